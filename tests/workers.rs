//! `threads:` (issue 14, point 4): every worker has a UDP socket of its own
//! on each listen address (SO_REUSEPORT), with its own receive loop, and
//! clients spread over them are all answered; forwarded misses reuse the
//! upstream sockets of a pool instead of opening one per query.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{query, serve, udp};

const RULES: &str = "
upstreams: [\"{upstream}\"]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], action: block}
";

/// UDP sockets bound to `port` on this host, from /proc/net/udp (local
/// address column `0100007F:1F90`), once there are `want` of them or 10 s
/// have passed (`server::run`, spawned by the harness, opens the workers'
/// sockets when it starts).
async fn udp_sockets_on(port: u16, want: usize) -> usize {
    let mut n = 0;
    for _ in 0..1000 {
        n = count_udp_sockets_on(port);
        if n == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    n
}

fn count_udp_sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|local| local.ends_with(&want))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_threads_open_three_udp_sockets_that_all_answer() {
    let up = Fakeup::start().await;
    let s = serve(&format!("threads: 3\n{RULES}"), up.addr()).await;
    assert_eq!(
        udp_sockets_on(s.addr.port(), 3).await,
        3,
        "one socket per worker"
    );
    // 24 clients on their own source ports: the kernel spreads them over
    // the three sockets by address and port; every one is answered.
    for i in 0..24 {
        let name = if i % 2 == 0 {
            "s05.upd.kaspersky.com."
        } else {
            "www.example.com."
        };
        let (m, _) = udp(s.addr, "127.0.0.1", &query(name, RecordType::A, None)).await;
        let want = if i % 2 == 0 {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(m.metadata.response_code, want, "{name}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_there_is_one_udp_socket_per_cpu_the_process_may_use() {
    let up = Fakeup::start().await;
    let s = serve(RULES, up.addr()).await;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(udp_sockets_on(s.addr.port(), cpus).await, cpus);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_misses_reuse_upstream_sockets_instead_of_one_per_query() {
    let up = Fakeup::start().await;
    let s = serve(&format!("threads: 1\n{RULES}"), up.addr()).await;
    for i in 0..20 {
        let name = format!("host{i}.example.com.");
        let (m, _) = udp(s.addr, "127.0.0.1", &query(&name, RecordType::A, None)).await;
        // Not in the upstream's zone: its NXDOMAIN, relayed.
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    assert_eq!(up.seen().len(), 20, "every name forwarded");
    // One query at a time: one socket carried all 20 (it is retired after
    // 64), so the upstream saw one source port.
    let ports: std::collections::BTreeSet<u16> = up.seen().iter().map(|q| q.src.port()).collect();
    assert_eq!(ports.len(), 1, "{ports:?}");
    s.stop().await;
}

/// ADR 0009: a receive loop keeps its cache misses as futures and sends the
/// answers that are in with one `sendmmsg`, up to a batch a turn. A burst of
/// answers larger than a batch (here 50, all released by the upstream at
/// once) reaches every client with its own ID and question, and a query that
/// arrives meanwhile is still read and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_forwarded_answers_larger_than_a_batch_reaches_every_client() {
    use std::time::Duration;

    use hickory_proto::op::Message;
    use tokio::net::UdpSocket;

    let up = Fakeup::start().await;
    up.set_mode(crate::fakeup::Mode::Delay(Duration::from_millis(300)));
    let s = serve(&format!("threads: 1\n{RULES}"), up.addr()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    const N: u16 = 50;
    for id in 0..N {
        let mut q = query(&format!("host{id}.example.com."), RecordType::A, Some(1232));
        q.metadata.id = id;
        let bytes = q.to_vec().expect("encode");
        client.send_to(&bytes, s.addr).await.expect("send");
    }
    // While the upstream holds them: a blocked name, answered at once.
    let mut q = query("dnl-01.geo.kaspersky.com.", RecordType::A, None);
    q.metadata.id = 999;
    client
        .send_to(&q.to_vec().expect("encode"), s.addr)
        .await
        .expect("send");
    let mut got = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < usize::from(N) + 1 {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf)).await
        else {
            break;
        };
        let m = Message::from_vec(&buf[..n]).expect("a DNS answer");
        let name = m.queries[0].name().to_ascii();
        assert!(
            got.insert(m.metadata.id, (name, m.metadata.response_code))
                .is_none(),
            "one answer per ID"
        );
    }
    assert_eq!(
        got.len(),
        usize::from(N) + 1,
        "every query answered: {got:?}"
    );
    let blocked = &got[&999];
    assert_eq!(blocked.1, ResponseCode::NXDomain);
    assert_eq!(
        got.keys().next_back(),
        Some(&999),
        "IDs 0..{N} and the blocked one"
    );
    for id in 0..N {
        assert_eq!(got[&id].0, format!("host{id}.example.com."), "ID {id}");
    }
    assert_eq!(
        up.seen().len(),
        usize::from(N),
        "the blocked name never left"
    );
    s.stop().await;
}
