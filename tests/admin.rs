//! The admin endpoint under abuse (issue 15, point 4): idle and slowloris
//! connections are closed by the header timeout, and connections over the
//! cap wait instead of taking descriptors. The limits are made small here;
//! every wait is bounded and generous, never a timing assertion.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{Running, http, query, serve, serve_draining, udp};

/// A generous bound for anything the server does on its own.
const BOUND: Duration = Duration::from_secs(15);

/// A second admin endpoint on the running server's state, with `limits`.
async fn admin(
    s: &Running,
    limits: cutoff::http::Limits,
) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = cutoff::http::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    tokio::spawn(cutoff::http::serve(listener, s.state.clone(), rx, limits));
    (addr, stop)
}

/// Reads until the server closes the connection; `true` when it did
/// within `BOUND` (a reset counts as closed).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + BOUND;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn get(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_admin_connections_are_closed_by_the_header_timeout() {
    let up = Fakeup::start().await;
    let s = serve("upstreams: [\"{upstream}\"]\n", up.addr()).await;
    let limits = cutoff::http::Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(300),
        lifetime: Duration::from_secs(60),
    };
    let (addr, _stop) = admin(&s, limits).await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let trickle = tokio::spawn(async move {
        // One header byte every 50 ms: each byte is on time, the header never is.
        let header = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in header {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        closed_by_server(&mut slow).await
    });
    assert!(
        closed_by_server(&mut idle).await,
        "an idle connection stays open"
    );
    assert!(
        trickle.await.expect("task"),
        "a slowloris connection stays open"
    );
    // Keep-alive: after one answer, the connection waits for the next
    // request's headers under the same timeout.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(BOUND, kept.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut kept).await,
        "an idle keep-alive connection stays open"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_and_are_served_when_a_slot_frees() {
    let up = Fakeup::start().await;
    let s = serve("upstreams: [\"{upstream}\"]\n", up.addr()).await;
    let limits = cutoff::http::Limits {
        max_connections: 4,
        header_timeout: Duration::from_secs(3600),
        lifetime: Duration::from_secs(3600),
    };
    let (addr, _stop) = admin(&s, limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // The kernel completes the handshake, but the server does not accept a
    // fifth connection while four are open: no answer comes.
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), fifth.read(&mut buf))
            .await
            .is_err(),
        "a connection over the cap was served"
    );
    // One held connection leaves: its slot goes to the waiting one.
    drop(held.pop());
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, fifth.read_to_end(&mut rest)).await;
    let answer = format!(
        "{}{}",
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(&rest)
    );
    assert!(
        answer.contains("200 OK") && answer.contains("ok"),
        "{answer:?}"
    );
    let mut sixth = TcpStream::connect(addr).await.expect("connect");
    drop(held.pop());
    assert!(get(&mut sixth, "/readyz").await.contains("ready"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_queries_drain_after_a_stop_readyz_says_503_and_the_query_is_answered() {
    let up = Fakeup::start().await;
    let yaml = "upstreams: [\"{upstream}\"]\nupstream_timeout: 30s\n";
    let listen = ["127.0.0.1:0".parse().expect("addr")];
    let s = serve_draining(yaml, up.addr(), &listen, Duration::from_secs(60)).await;
    let (dns, admin) = (s.addr, s.http);
    assert_eq!(http(admin, "GET", "/readyz").await.0, 200);
    // A query the upstream holds until released: in flight at the stop.
    let held = tokio::spawn(async move {
        udp(
            dns,
            "127.0.0.1",
            &query("hold.example.com", RecordType::A, None),
        )
        .await
    });
    let until = Instant::now() + BOUND;
    while up.seen_name("hold.example.com").is_empty() {
        assert!(
            Instant::now() < until,
            "the held query never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::spawn(s.stop());
    let until = Instant::now() + BOUND;
    while http(admin, "GET", "/readyz").await.0 != 503 {
        assert!(
            Instant::now() < until,
            "/readyz never turned 503 during the drain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !stopping.is_finished(),
        "the stop waits for the query in flight"
    );
    up.release();
    let (answer, _) = held.await.expect("the held query's task");
    // The upstream's own answer (the fake knows no such name), not the
    // SERVFAIL a query cut off by the stop would get.
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.sent().len(), 1);
    tokio::time::timeout(BOUND, stopping)
        .await
        .expect("the stop finishes once the query is answered")
        .expect("the stop's task");
}
