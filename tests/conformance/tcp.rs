//! Points 4 and 5 of issue #9 (RFC 7766 §6.2.1.1): pipelined queries on one
//! connection are served concurrently and answered as they complete, and at
//! `tcp.max_queries` the connection stops reading, answers everything it
//! read and closes with FIN, losing no answer.

use std::collections::HashSet;

use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::{Bits, FORWARD, query_with};
use crate::fakeup::Fakeup;
use crate::harness::{read_frame, serve, tcp_connect};

/// `n` framed queries in one buffer, and their IDs in order; the first for
/// `first`, the others for distinct names under example.com.
fn pipeline(n: usize, first: &str) -> (Vec<u8>, Vec<u16>) {
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let name = if i == 0 {
            first.to_owned()
        } else {
            format!("n{i}.example.com.")
        };
        let mut q = query_with(&name, RecordType::A, Bits::default());
        q.metadata.id = u16::try_from(i + 1).expect("id");
        let bytes = q.to_vec().expect("encode");
        out.extend_from_slice(&u16::try_from(bytes.len()).expect("len").to_be_bytes());
        out.extend_from_slice(&bytes);
        ids.push(q.metadata.id);
    }
    (out, ids)
}

fn id(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[0], frame[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_answers_do_not_wait_for_a_slow_one() {
    let up = Fakeup::start().await;
    let s = serve(&format!("{FORWARD}tcp: {{max_queries: 200}}\n"), up.addr()).await;
    let mut c = tcp_connect(s.addr, "127.0.0.1").await;
    // The first query's answer is held by the upstream until released.
    let (bytes, ids) = pipeline(120, "hold.example.com.");
    c.write_all(&bytes).await.expect("write");
    let mut got = HashSet::new();
    for _ in 1..120 {
        let frame = read_frame(&mut c)
            .await
            .expect("an answer while the first is held");
        assert_ne!(id(&frame), ids[0], "the held answer cannot come first");
        got.insert(id(&frame));
    }
    assert_eq!(got, ids[1..].iter().copied().collect::<HashSet<_>>());
    up.release();
    let last = read_frame(&mut c)
        .await
        .expect("the held answer, once released");
    assert_eq!(id(&last), ids[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_the_cap_are_not_read_and_every_read_one_is_answered_before_fin() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await; // tcp.max_queries: 100 (default)
    let mut c = tcp_connect(s.addr, "127.0.0.1").await;
    let (bytes, ids) = pipeline(120, "www.example.com.");
    c.write_all(&bytes).await.expect("write");
    let mut got = HashSet::new();
    for i in 0..100 {
        let frame = read_frame(&mut c)
            .await
            .unwrap_or_else(|| panic!("answer {i} of 100 (got {})", got.len()));
        got.insert(id(&frame));
    }
    assert_eq!(got, ids[..100].iter().copied().collect::<HashSet<_>>());
    // Then a clean end of stream (FIN), not a reset.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut rest))
        .await
        .expect("the connection ends");
    assert!(read.is_ok(), "closed with FIN, not RST: {read:?}");
    assert!(
        rest.is_empty(),
        "no answer beyond the cap: {} bytes",
        rest.len()
    );
    s.stop().await;
}
