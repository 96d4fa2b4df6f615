//! The answer cache over real sockets: serve-stale through an upstream that
//! goes dead and its background refresh when it is back (RFC 8767), and
//! keys that keep label boundaries.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::fakeup::{Fakeup, Mode};
use crate::harness::{ede, http, parse_metrics, query, serve, udp, value};

/// Answers kept fresh for one second, so a test can outlive them.
const CONFIG: &str = "
upstreams: [\"{upstream}\"]
upstream_timeout: 300ms
cache:
  max_ttl: 1
";

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_goes_dead_is_bridged_by_stale_answers_with_ede_3() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let ask = || query("www.example.com.", RecordType::A, Some(1232));
    let (m, _) = udp(s.addr, "127.0.0.1", &ask()).await;
    assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(ede(&m), None);

    // The answer expires (max_ttl 1 s) and the upstream dies.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    up.set_mode(Mode::Drop);
    let asked = up.seen_name("www.example.com").len();
    let (m, _) = udp(s.addr, "127.0.0.1", &ask()).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(m.answers[0].ttl, 30);
    assert_eq!(ede(&m).map(|e| e.0), Some(3), "EDE 3 Stale Answer");
    // It was served stale only after the upstream was asked (with its
    // retransmits) and failed.
    let after = up.seen_name("www.example.com").len();
    assert!(after > asked, "{after} > {asked}");

    // For the next 30 s the name is answered stale at once, without asking
    // the dead upstream again; a client without EDNS gets no OPT.
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(m.answers[0].ttl, 30);
    assert!(m.edns.is_none());
    assert_eq!(up.seen_name("www.example.com").len(), after);

    // A name never cached still fails as before.
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::AAAA, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);

    let (status, body) = http(s.http, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_metrics(&body);
    assert_eq!(
        value(&samples, "cutoff_cache_stale_answers_total", &[]),
        Some(2.0)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_served_stale_is_refreshed_in_the_background_once_the_upstream_is_back() {
    let up = Fakeup::start().await;
    let s = serve(
        &CONFIG.replace("max_ttl: 1", "max_ttl: 1\n  stale_refresh: 1s"),
        up.addr(),
    )
    .await;
    let ask = || query("www.example.com.", RecordType::A, Some(1232));
    let seen = || up.seen_name("www.example.com").len();
    udp(s.addr, "127.0.0.1", &ask()).await;
    // Expired, and the upstream dead: served stale.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    up.set_mode(Mode::Drop);
    let (m, _) = udp(s.addr, "127.0.0.1", &ask()).await;
    assert_eq!(ede(&m).map(|e| e.0), Some(3));
    // The upstream is back. Past `stale_refresh`, the next client is still
    // answered stale at once (it did not wait for the healthy upstream,
    // whose answer would be fresh), and one refresh asks the upstream.
    up.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = seen();
    let (m, _) = udp(s.addr, "127.0.0.1", &ask()).await;
    assert_eq!(
        ede(&m).map(|e| e.0),
        Some(3),
        "answered stale, not on the upstream's time"
    );
    assert_eq!(m.answers[0].ttl, 30);
    // Once the refresh is stored, clients get the fresh answer from the
    // cache: the upstream was asked once, by the refresh.
    let mut fresh = None;
    for _ in 0..100 {
        let (m, _) = udp(s.addr, "127.0.0.1", &ask()).await;
        if ede(&m).is_none() {
            fresh = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = fresh.expect("a fresh answer after the refresh");
    assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(
        m.answers[0].ttl > 30,
        "the upstream's TTL, not the stale 30"
    );
    assert_eq!(seen(), before + 1, "only the refresh reached the upstream");
    let (_, body) = http(s.http, "GET", "/metrics").await;
    let samples = parse_metrics(&body);
    let refreshed = |r| value(&samples, "cutoff_cache_refreshes_total", &[("result", r)]);
    assert_eq!(
        (refreshed("fresh"), refreshed("failed")),
        (Some(1.0), Some(0.0))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_inside_a_label_makes_another_name_with_its_own_cache_entry() {
    let up = Fakeup::start().await;
    let s = serve(&CONFIG.replace("max_ttl: 1", "max_ttl: 300"), up.addr()).await;
    let three = query("a.b.example.com.", RecordType::A, Some(1232));
    let two = query("a\\.b.example.com.", RecordType::A, Some(1232));
    // Twice each, interleaved: the second round comes from the cache.
    for _ in 0..2 {
        let (m, _) = udp(s.addr, "127.0.0.1", &three).await;
        assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 31)]);
        let (m, _) = udp(s.addr, "127.0.0.1", &two).await;
        assert_eq!(addresses(&m), [Ipv4Addr::new(192, 0, 2, 32)]);
        assert_eq!(m.queries[0].name().to_ascii(), "a\\.b.example.com.");
    }
    // Each name reached the upstream once, as itself.
    assert_eq!(up.seen_name("a.b.example.com").len(), 1);
    assert_eq!(up.seen_name("a\\.b.example.com").len(), 1);
    s.stop().await;
}
