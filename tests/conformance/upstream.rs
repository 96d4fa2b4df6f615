//! Points 1, 2, 6 and 12 of issue #9: a lost packet or a slow upstream is
//! answered, failures say which upstream failed and how, answers hickory
//! cannot parse are relayed intact, and an upstream that rejects EDNS is
//! asked without it.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use super::common::{Bits, FORWARD, ask, query_with, udp_bytes};
use crate::fakeup::{Fakeup, Mode};
use crate::harness::{ede, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_udp_packet_is_resent_and_answered() {
    let up = Fakeup::start().await;
    up.drop_next_udp(1);
    let s = serve(FORWARD, up.addr()).await;
    let m = ask(
        s.addr,
        &query_with("www.example.com.", RecordType::A, Bits::default()),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert!(
        up.seen_name("www.example.com").len() >= 2,
        "the dropped query was resent: {:?}",
        up.seen()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_second_upstream_is_answered_within_the_default_budget() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Delay(Duration::from_secs(4)));
    let s = serve(FORWARD, up.addr()).await;
    let q = query_with("www.example.com.", RecordType::A, Bits::default());
    let reply = udp_bytes(s.addr, &q, Duration::from_secs(15)).await;
    let m = Message::from_vec(&reply).expect("parse");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(m.answers.len(), 1);
    s.stop().await;
}

/// A 127.0.0.1 port where nothing listens (ICMP port unreachable).
async fn closed_port() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.local_addr().expect("addr")
}

/// Asks for www.example.com, expects SERVFAIL; its EDE code and text.
async fn servfail(server: std::net::SocketAddr) -> (u16, String) {
    let q = query_with("www.example.com.", RecordType::A, Bits::default());
    let m = ask(server, &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    ede(&m).expect("EDE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_upstream_and_a_silent_one_get_different_extended_errors() {
    let closed = closed_port().await;
    let s = serve(FORWARD, closed).await;
    let (code, text) = servfail(s.addr).await;
    assert_eq!(code, 23, "every upstream failed at once: Network Error");
    assert!(
        text.contains(&closed.to_string()) && text.contains("refused"),
        "{text}"
    );
    s.stop().await;

    let up = Fakeup::start().await;
    up.set_mode(Mode::Drop);
    let s = serve(&format!("{FORWARD}upstream_timeout: 1s\n"), up.addr()).await;
    let (code, text) = servfail(s.addr).await;
    assert_eq!(code, 22, "the budget ran out: No Reachable Authority");
    assert!(
        text.contains("timed out") && !text.contains("refused"),
        "{text}"
    );
    assert!(
        up.seen().len() >= 2,
        "resent before giving up: {:?}",
        up.seen()
    );
    s.stop().await;
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the subscriber set here sees every task of the test.
#[tokio::test]
async fn upstream_failures_are_logged_once_at_the_default_level() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let closed = closed_port().await;
    let s = serve(FORWARD, closed).await;
    for name in ["a.example.com.", "b.example.com.", "c.example.com."] {
        let m = ask(s.addr, &query_with(name, RecordType::A, Bits::default())).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    s.stop().await;
    let text =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("upstream failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "rate-limited to one line: {text}");
    assert!(
        warnings[0].contains("kind=\"refused\"") || warnings[0].contains("kind=refused"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains(&closed.to_string()), "{}", warnings[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hickory_cannot_parse_are_relayed_intact() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await;
    for (name, qtype) in [
        ("null-empty.example.com.", RecordType::NULL),
        ("unknown-empty.example.com.", RecordType::Unknown(65280)),
        ("apl-empty.example.com.", RecordType::Unknown(42)),
        ("caa-long.example.com.", RecordType::CAA),
        ("two-opt.example.com.", RecordType::A),
    ] {
        let q = query_with(name, qtype, Bits::default());
        let reply = udp_bytes(s.addr, &q, Duration::from_secs(10)).await;
        let sent = up.sent().pop().expect("the upstream answered");
        assert!(
            Message::from_vec(&sent).is_err(),
            "{name}: the case must be one hickory cannot parse"
        );
        assert_eq!(reply[3] & 0x0f, 0, "{name}: NOERROR, not SERVFAIL");
        // Everything after the header's flags is the upstream's, byte for byte.
        assert_eq!(reply[4..], sent[4..], "{name}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_answer_with_a_cname_into_a_blocked_zone_is_still_blocked() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await;
    let q = query_with("opaque-alias.example.com.", RecordType::A, Bits::default());
    let m = ask(s.addr, &q).await;
    assert!(
        Message::from_vec(&up.sent()[0]).is_err(),
        "hickory cannot parse it"
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    let (code, text) = ede(&m).expect("EDE");
    assert_eq!(code, 15);
    assert!(text.contains("via CNAME s05.upd.kaspersky.com"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_rejects_edns_is_asked_without_it_and_remembered() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::FormErrOnEdns);
    let s = serve(FORWARD, up.addr()).await;
    let no_edns = Bits {
        edns: None,
        ..Bits::default()
    };
    let m = ask(
        s.addr,
        &query_with("www.example.com.", RecordType::A, no_edns),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(m.answers.len(), 1);
    let m = ask(
        s.addr,
        &query_with("example.com.", RecordType::AAAA, Bits::default()),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(m.answers.len(), 1);
    assert!(m.edns.is_some(), "the EDNS client still gets an OPT");
    let later = up.seen_name("example.com");
    assert!(
        !later.is_empty() && later.iter().all(|q| !q.edns),
        "after a FORMERR the upstream is asked without EDNS at once: {later:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_silent_to_edns_is_asked_without_it() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::DropEdns);
    let s = serve(FORWARD, up.addr()).await;
    let m = ask(
        s.addr,
        &query_with("www.example.com.", RecordType::A, Bits::default()),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(m.answers.len(), 1);
    assert!(m.edns.is_some(), "the EDNS client still gets an OPT");
    let seen = up.seen_name("www.example.com");
    assert!(
        seen.iter().any(|q| q.edns) && seen.iter().any(|q| !q.edns),
        "{seen:?}"
    );
    // Remembered: the next query goes without EDNS at once.
    let m = ask(
        s.addr,
        &query_with("example.com.", RecordType::A, Bits::default()),
    )
    .await;
    assert_eq!(m.answers.len(), 1);
    let seen = up.seen_name("example.com");
    assert!(seen.iter().all(|q| !q.edns), "{seen:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_measured_fastest_is_asked_first() {
    let silent = Fakeup::start().await;
    silent.set_mode(Mode::Drop);
    let up = Fakeup::start().await;
    let yaml = format!(
        "upstreams: [\"{}\", \"{{upstream}}\"]\nupstream_timeout: 2s\n",
        silent.addr()
    );
    let s = serve(&yaml, up.addr()).await;
    // The first query tries the first upstream (config order), then the second.
    let m = ask(
        s.addr,
        &query_with("www.example.com.", RecordType::A, Bits::default()),
    )
    .await;
    assert_eq!(m.answers.len(), 1, "{m:?}");
    let asked = silent.seen().len();
    assert!(asked >= 1);
    // Now the second is measured and the first backed off: the second first.
    for name in ["a.example.com.", "b.example.com.", "c.example.com."] {
        let m = ask(s.addr, &query_with(name, RecordType::A, Bits::default())).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    }
    assert_eq!(
        silent.seen().len(),
        asked,
        "the silent upstream was not asked again"
    );
    s.stop().await;
}
