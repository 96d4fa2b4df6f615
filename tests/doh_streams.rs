//! The HTTP/2 streams of one DoH connection are served side by side: a
//! request waiting on the upstream does not hold up the next one (issue 13,
//! DoH throughput). No clock is read: the upstream holds its answer until
//! the test releases it.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hyper::StatusCode;

use crate::doh::{config, h2, post, read, wire};
use crate::fakeup::Fakeup;
use crate::harness::{query, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_name_is_answered_while_an_earlier_stream_on_the_connection_waits_upstream() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, pem) = config(dir.path(), "");
    // The held answer must outlast the test's steps, not race a timeout.
    let yaml = yaml.replace("upstream_timeout: 500ms", "upstream_timeout: 60s");
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let send = h2(s.https[0], &pem).await;
    // Stream 1: a name the upstream holds until released.
    let held = query("hold.example.com.", RecordType::A, None);
    let first = tokio::spawn({
        let mut send = send.clone();
        let req = post("/dns-query", "application/dns-message", wire(&held));
        async move { read(send.send_request(req).await).await }
    });
    // Bounded wait until cutoff has forwarded it (so stream 1 is open).
    for _ in 0..500 {
        if !up.seen_name("hold.example.com").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !up.seen_name("hold.example.com").is_empty(),
        "never forwarded"
    );
    // Stream 2 on the same connection: blocked, answered by cutoff itself.
    // Served one at a time, it would wait for stream 1, which then only
    // the upstream timeout ends (SERVFAIL, caught below).
    let blocked = query("s05.upd.kaspersky.com.", RecordType::A, None);
    let req = post("/dns-query", "application/dns-message", wire(&blocked));
    let (code, r) = read(send.clone().send_request(req).await).await;
    assert_eq!(code, StatusCode::OK);
    let answer = Message::from_vec(r.body()).expect("dns");
    assert_eq!(answer.metadata.id, blocked.metadata.id);
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(!first.is_finished(), "stream 1 should still be waiting");
    up.release();
    let (code, r) = first.await.expect("stream 1");
    assert_eq!(code, StatusCode::OK);
    let answer = Message::from_vec(r.body()).expect("dns");
    assert_eq!(answer.metadata.id, held.metadata.id);
    // The upstream's own answer (the name is outside its zone), not a timeout.
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.seen_name("hold.example.com").len(), 1);
    s.stop().await;
}
