//! The forward path's own cost: `Upstreams::forward` for one query against
//! an upstream on loopback that answers at once (a thread that echoes the
//! query back as a response). What it measures is everything cutoff does
//! per forwarded try: the socket, the fresh ID, the send, the wait in the
//! reactor, the match of ID and question, the copy of the answer; the
//! upstream's own work is a `recv_from` and a `send_to`.
//!
//! `cargo bench --bench forward`. Figures: docs/performance.md.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use cutoff::config::Upstream;
use cutoff::upstream::Upstreams;

/// `www.example.com A?` with an OPT, as `pipeline` sends it upstream.
fn query() -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

/// An upstream that answers every query with the query itself, QR set,
/// until `stop` (bounded by a read timeout, so it never outlives the bench
/// for long).
fn echo(stop: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let addr = socket.local_addr()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if let Some(b) = buf.get_mut(2) {
                    *b |= 0x80;
                }
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    Ok(addr)
}

fn bench(c: &mut Criterion) {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = echo(stop.clone()).expect("a loopback socket");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let upstreams = rt.block_on(async {
        Upstreams::new(
            &[Upstream::Plain(addr)],
            Duration::from_secs(2),
            &[],
            Path::new("/nonexistent"),
            None,
        )
        .expect("one plain upstream")
    });
    let q = query();
    c.bench_function("forward/udp_loopback", |b| {
        b.iter(|| {
            rt.block_on(async {
                let a = upstreams.forward(black_box(&q), &[]).await;
                black_box(a.map(|a| a.bytes.len()).unwrap_or(0))
            })
        });
    });
    stop.store(true, Ordering::Relaxed);
}

criterion_group!(benches, bench);
criterion_main!(benches);
