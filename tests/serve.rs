//! `cutoff serve` over real UDP and TCP sockets against the in-process
//! upstream (`fakeup`), which records everything it is asked.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::fakeup::{Fakeup, Mode, Transport};
use crate::harness::{ede, query, serve, tcp, tcp_connect, tcp_on, udp, udp_raw};

/// Three networks on loopback: .2 enforces, .3 only logs, everything else
/// (127.0.0.1) is `default` with no rule at all.
const NETWORKS: &str = "
upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
networks:
  staff: [127.0.0.2/32]
  lab: [127.0.0.3/32]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update, telemetry, activation], action: block}
  - {name: lab-watch, networks: [lab], lists: [kaspersky], action: log}
";

fn config(answer: &str) -> String {
    format!("{NETWORKS}blocking: {{answer: {answer}, ttl: 120}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_name_is_answered_locally_and_never_reaches_the_upstream() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    for name in [
        "s05.upd.kaspersky.com.",
        "dnl-42.geo.kaspersky.com.",
        "KSN-FILE-GEO.kaspersky-labs.com.",
    ] {
        let (m, _) = udp(s.addr, "127.0.0.2", &query(name, RecordType::A, Some(1232))).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        let m = tcp(s.addr, "127.0.0.2", &query(name, RecordType::AAAA, None)).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{name} over tcp"
        );
    }
    assert!(
        up.seen_name("s05.upd.kaspersky.com").is_empty(),
        "{:?}",
        up.seen()
    );
    assert!(up.seen_name("dnl-42.geo.kaspersky.com").is_empty());
    assert!(up.seen_name("ksn-file-geo.kaspersky-labs.com").is_empty());
    assert!(
        up.seen().is_empty(),
        "nothing at all was forwarded: {:?}",
        up.seen()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_is_blocked_logged_or_allowed_by_network() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let name = "alias.example.com.";
    // staff: the CNAME target is a blocked update host.
    let (m, _) = udp(s.addr, "127.0.0.2", &query(name, RecordType::A, Some(1232))).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (code, text) = ede(&m).expect("EDE");
    assert_eq!(code, 15);
    assert!(
        text.contains("staff-cutoff") && text.contains("via CNAME s05.upd.kaspersky.com"),
        "{text}"
    );
    // lab: logged only, so the upstream's answer comes through.
    let (m, _) = udp(s.addr, "127.0.0.3", &query(name, RecordType::A, Some(1232))).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 2);
    // default: no rule.
    let m = tcp(
        s.addr,
        "127.0.0.1",
        &query("s05.upd.kaspersky.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "the fake upstream has no such name"
    );
    assert_eq!(
        up.seen_name("s05.upd.kaspersky.com").len(),
        1,
        "allowed on default: forwarded once"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_mode_answers_as_configured_with_ede_15() {
    let up = Fakeup::start().await;
    for mode in ["nxdomain", "nodata", "refused", "sinkhole"] {
        let s = serve(&config(mode), up.addr()).await;
        let (a, _) = udp(
            s.addr,
            "127.0.0.2",
            &query("s01.upd.kaspersky.com.", RecordType::A, Some(1232)),
        )
        .await;
        let (aaaa, _) = udp(
            s.addr,
            "127.0.0.2",
            &query("s01.upd.kaspersky.com.", RecordType::AAAA, Some(1232)),
        )
        .await;
        let (mx, _) = udp(
            s.addr,
            "127.0.0.2",
            &query("s01.upd.kaspersky.com.", RecordType::MX, Some(1232)),
        )
        .await;
        for m in [&a, &aaaa, &mx] {
            let (code, text) = ede(m).expect("EDE on every blocked answer");
            assert_eq!(code, 15, "{mode}");
            assert!(
                text.contains("rule staff-cutoff") && text.contains("list kaspersky"),
                "{mode}: {text}"
            );
            assert!(m.edns.as_ref().is_some_and(|e| e.max_payload() == 1232));
        }
        match mode {
            "nxdomain" | "nodata" => {
                let rcode = if mode == "nxdomain" {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                assert_eq!(a.metadata.response_code, rcode);
                assert!(a.answers.is_empty());
                let soa = &a.authorities[0];
                assert_eq!(soa.name.to_ascii(), "s01.upd.kaspersky.com.");
                assert_eq!(soa.ttl, 120);
                assert!(matches!(&soa.data, RData::SOA(s) if s.minimum == 120));
            }
            "refused" => assert_eq!(a.metadata.response_code, ResponseCode::Refused),
            _ => {
                assert_eq!(a.answers[0].data, RData::A("0.0.0.0".parse().expect("ip")));
                assert_eq!(a.answers[0].ttl, 120);
                assert_eq!(aaaa.answers[0].data, RData::AAAA("::".parse().expect("ip")));
                assert!(mx.answers.is_empty());
                assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
            }
        }
        s.stop().await;
    }
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_pass_through_unchanged() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("www.Example.COM.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "www.Example.COM.",
        "the client's spelling of the question"
    );
    assert_eq!(
        m.answers[0].data,
        RData::A("192.0.2.1".parse().expect("ip"))
    );
    assert!(m.metadata.recursion_available);
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("nope.nx.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(&m.authorities[0].data, RData::SOA(_)));
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("servfail-ede.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede(&m), Some((6, "fakeup bogus".into())));
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    assert!(m.edns.is_none(), "no OPT for a client that sent none");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_answer_is_retried_over_tcp() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("tc-only.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(
        m.answers[0].data,
        RData::A("192.0.2.99".parse().expect("ip"))
    );
    let seen = up.seen_name("tc-only.example.com");
    assert!(seen.iter().any(|q| q.transport == Transport::Udp));
    assert!(seen.iter().any(|q| q.transport == Transport::Tcp));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_never_exceed_the_clients_size() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    // ~700 bytes: too big without EDNS (512), fine with EDNS.
    let (m, n) = udp(
        s.addr,
        "127.0.0.1",
        &query("many.example.com.", RecordType::A, None),
    )
    .await;
    assert!(n <= 512, "{n}");
    assert!(m.metadata.truncation);
    let (m, n) = udp(
        s.addr,
        "127.0.0.1",
        &query("many.example.com.", RecordType::A, Some(4096)),
    )
    .await;
    assert!(
        n <= 1232 && !m.metadata.truncation && m.answers.len() == 40,
        "{n}"
    );
    // ~3 KB: over TCP in full, over UDP truncated even for a 4096-byte client.
    let (m, n) = udp(
        s.addr,
        "127.0.0.1",
        &query("huge.example.com.", RecordType::TXT, Some(4096)),
    )
    .await;
    assert!(n <= 1232 && m.metadata.truncation, "{n}");
    let m = tcp(
        s.addr,
        "127.0.0.1",
        &query("huge.example.com.", RecordType::TXT, Some(4096)),
    )
    .await;
    assert_eq!(m.answers.len(), 12);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gets_a_minimal_answer_and_is_never_forwarded() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let (m, n) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::ANY, Some(1232)),
    )
    .await;
    assert!(n <= 512);
    assert!(matches!(&m.answers[0].data, RData::HINFO(h) if &*h.cpu == b"RFC8482"));
    let m = tcp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::ANY, None),
    )
    .await;
    assert_eq!(m.answers.len(), 1);
    assert!(up.seen().iter().all(|q| q.qtype != 255), "{:?}", up.seen());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_with_qr_set_gets_no_reply() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let mut bytes = query("example.com.", RecordType::A, None)
        .to_vec()
        .expect("encode");
    bytes[2] |= 0x80;
    assert!(
        udp_raw(s.addr, "127.0.0.1", &bytes, Duration::from_millis(500))
            .await
            .is_none()
    );
    // Garbage with a readable header gets FORMERR; the server keeps serving.
    let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let reply = udp_raw(s.addr, "127.0.0.1", &garbage, Duration::from_secs(2))
        .await
        .expect("FORMERR");
    assert_eq!((reply[0], reply[1], reply[3] & 0x0f), (0x12, 0x34, 1));
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        up.seen()
            .iter()
            .all(|q| q.name.eq_ignore_ascii_case("example.com"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_do_not_stop_udp_or_new_tcp_clients() {
    let up = Fakeup::start().await;
    let s = serve(
        &format!("{}tcp: {{idle_timeout: 30s}}\n", config("nxdomain")),
        up.addr(),
    )
    .await;
    let mut idle = Vec::new();
    for i in 0..200 {
        idle.push(tcp_connect(s.addr, &format!("127.0.1.{}", 1 + i % 200)).await);
    }
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = tcp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = tcp(
        s.addr,
        "127.0.0.2",
        &query("s05.upd.kaspersky.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    drop(idle);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_time_out_and_give_their_slots_back() {
    let up = Fakeup::start().await;
    let cfg = format!(
        "{}tcp: {{idle_timeout: 300ms, max_connections: 4, max_queries: 3}}\n",
        config("nxdomain")
    );
    let s = serve(&cfg, up.addr()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp_connect(s.addr, "127.0.0.1").await);
    }
    // Over the cap, an idle one is evicted (tests/tcplimits.rs); after the
    // idle timeout the held connections are gone and room is back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut c = tcp_connect(s.addr, "127.0.0.1").await;
    for i in 0..3 {
        assert!(
            tcp_on(&mut c, &query("example.com.", RecordType::A, None))
                .await
                .is_some(),
            "query {i}"
        );
    }
    assert!(
        tcp_on(&mut c, &query("example.com.", RecordType::A, None))
            .await
            .is_none(),
        "closed after max_queries"
    );
    drop(held);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_gives_servfail_with_ede_22_within_the_timeout() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Drop);
    let s = serve(&config("nxdomain"), up.addr()).await;
    let start = Instant::now();
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, Some(1232)),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede(&m).map(|e| e.0), Some(22));
    // The configured per-try timeout is 500 ms and there is one upstream;
    // the bound is loose because the machine is shared.
    assert!(took >= Duration::from_millis(450), "{took:?}");
    // Blocked names are still answered while the upstream is down.
    let (m, _) = udp(
        s.addr,
        "127.0.0.2",
        &query("s05.upd.kaspersky.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_misses_share_one_upstream_query_and_then_the_cache() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Delay(Duration::from_millis(200)));
    let s = serve(&config("nxdomain"), up.addr()).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            let from = format!("127.0.2.{}", i + 1);
            udp(
                addr,
                &from,
                &query("www.example.com.", RecordType::A, Some(1232)),
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").answers.len(), 1);
    }
    up.set_mode(Mode::Normal);
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("WWW.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.seen_name("www.example.com").len(), 1, "{:?}", up.seen());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_access_are_refused_or_dropped() {
    let up = Fakeup::start().await;
    let cfg = format!(
        "{}access: {{allow: [127.0.0.1/32, 127.0.0.2/32]}}\n",
        config("nxdomain")
    );
    let s = serve(&cfg, up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.9",
        &query("example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(ede(&m).map(|e| e.0), Some(18));
    s.stop().await;
    let cfg = format!(
        "{}access: {{allow: [127.0.0.1/32], denied: drop}}\n",
        config("nxdomain")
    );
    let s = serve(&cfg, up.addr()).await;
    let bytes = query("example.com.", RecordType::A, None)
        .to_vec()
        .expect("encode");
    assert!(
        udp_raw(s.addr, "127.0.0.9", &bytes, Duration::from_millis(500))
            .await
            .is_none()
    );
    assert!(
        up.seen().is_empty(),
        "refused clients never cause upstream traffic"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_invalid_file_keeps_the_running_policy() {
    let up = Fakeup::start().await;
    let s = serve(&config("nxdomain"), up.addr()).await;
    let path = s.state.config_path.clone().expect("path");
    let blocked = || query("s05.upd.kaspersky.com.", RecordType::A, Some(1232));
    std::fs::write(&path, "rules:\n  - name: [broken\n").expect("write");
    assert!(s.state.reload().is_err());
    let (m, _) = udp(s.addr, "127.0.0.2", &blocked()).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "old policy still in force"
    );
    // A valid file that logs instead of blocking takes effect.
    let relaxed = config("nxdomain")
        .replace("action: block", "action: log")
        .replace("{upstream}", &up.addr().to_string());
    std::fs::write(&path, relaxed).expect("write");
    s.state.reload().expect("valid reload");
    let (m, _) = udp(s.addr, "127.0.0.2", &blocked()).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "forwarded now; the fake upstream has no such name"
    );
    assert_eq!(up.seen_name("s05.upd.kaspersky.com").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_into_a_listed_prefix_is_blocked_or_logged_as_the_rule_says() {
    let up = Fakeup::start().await;
    let cfg = config("nxdomain")
        .replace("lists:\n", "lists:\n  kn: {builtin: kaspersky-networks}\n")
        .replace(
            "rules:\n",
            "rules:\n  - {name: kaspersky-ips, networks: [staff], lists: [kn], action: block}\n",
        );
    let s = serve(&cfg, up.addr()).await;
    // staff: 91.103.66.155 is inside 91.103.64.0/21: the answer is replaced.
    let (m, _) = udp(
        s.addr,
        "127.0.0.2",
        &query("kasperskyip.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (_, text) = ede(&m).expect("EDE");
    assert!(
        text.contains("kaspersky-ips")
            && text.contains("91.103.64.0/21")
            && text.contains("91.103.66.155"),
        "{text}"
    );
    // default: no address rule, the upstream's answer stands.
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("kasperskyip.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(
        m.answers[0].data,
        RData::A("91.103.66.155".parse().expect("ip"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_and_ipv6_wildcards_can_be_listed_together() {
    if !crate::util::needs(
        std::net::UdpSocket::bind("[::1]:0").is_ok(),
        "IPv6",
        "a kernel and loopback with IPv6",
    ) {
        return;
    }
    // The IPv4 wildcard takes a free port (UDP and TCP) and keeps it; the
    // IPv6 wildcard then binds the same port. A host that let IPv6 sockets
    // take IPv4 too would fail every try; another process taking the port
    // in between fails one try (of ten).
    let mut last = None;
    for _ in 0..10 {
        // Port 0 takes a free UDP port, then TCP on it: another test may
        // hold that TCP port already, and then this try takes another.
        let v4 = match cutoff::server::Listeners::bind(&["0.0.0.0:0".parse().expect("v4")]).await {
            Ok(l) => l,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let port = v4.addrs()[0].port();
        let v6 = format!("[::]:{port}").parse().expect("v6");
        match cutoff::server::Listeners::bind(&[v6]).await {
            Ok(l) => {
                assert_eq!(l.addrs(), vec![v6]);
                return;
            }
            Err(e) => last = Some(e),
        }
    }
    panic!("[::] could not bind beside 0.0.0.0 on the same port: {last:?}");
}
