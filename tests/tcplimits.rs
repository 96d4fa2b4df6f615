//! The TCP connection table over real sockets (issue 15.7): one client
//! holding or reopening every slot cannot keep another from an answer. A
//! full table evicts the connection idle the longest, a prefix at
//! `tcp.max_per_client` has its new connection closed, and both are counted.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::AsyncReadExt;

use crate::fakeup::{Fakeup, Mode};
use crate::harness::{http, parse_metrics, query, serve, tcp_connect, tcp_on, value};

const BLOCKING: &str = "
upstreams: [\"{upstream}\"]
upstream_timeout: 3s
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], action: block}
";

const BLOCKED: &str = "s05.upd.kaspersky.com.";

async fn dropped(s: &crate::harness::Running, reason: &str) -> f64 {
    let (_, body) = http(s.http, "GET", "/metrics").await;
    value(
        &parse_metrics(&body),
        "cutoff_dropped_total",
        &[("reason", reason)],
    )
    .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_reopening_every_tcp_slot_cannot_keep_another_from_an_answer() {
    let up = Fakeup::start().await;
    // No per-client cap in the way: eviction alone must do it.
    let cfg = format!("{BLOCKING}tcp: {{max_connections: 4, max_per_client: 100}}\n");
    let s = serve(&cfg, up.addr()).await;
    // Client A fills the table, then keeps opening connections: each one
    // is answered (so the server holds it) and then left idle.
    let mut held = Vec::new();
    for i in 0..8 {
        let mut c = tcp_connect(s.addr, "127.0.0.5").await;
        let m = tcp_on(&mut c, &query(BLOCKED, RecordType::A, None)).await;
        assert!(m.is_some(), "client A's connection {i} was not answered");
        held.push(c);
    }
    // Client B is answered: the connection A left idle the longest made room.
    let mut b = tcp_connect(s.addr, "127.0.0.6").await;
    let m = tcp_on(&mut b, &query(BLOCKED, RecordType::A, None))
        .await
        .expect("client B answered while A holds every slot");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // A's first connection was closed cleanly (FIN, not RST).
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), held[0].read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    // A's newest connection still works.
    let last = held.last_mut().expect("held");
    assert!(
        tcp_on(last, &query(BLOCKED, RecordType::A, None))
            .await
            .is_some()
    );
    assert_eq!(dropped(&s, "tcp_evicted").await, 5.0);
    assert_eq!(dropped(&s, "tcp_connections").await, 0.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_max_per_client_has_its_next_connection_closed_and_others_are_answered() {
    let up = Fakeup::start().await;
    let cfg = format!("{BLOCKING}tcp: {{max_connections: 16, max_per_client: 2}}\n");
    let s = serve(&cfg, up.addr()).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tcp_connect(s.addr, "127.0.0.5").await;
        assert!(
            tcp_on(&mut c, &query(BLOCKED, RecordType::A, None))
                .await
                .is_some()
        );
        held.push(c);
    }
    let mut third = tcp_connect(s.addr, "127.0.0.5").await;
    assert!(
        tcp_on(&mut third, &query(BLOCKED, RecordType::A, None))
            .await
            .is_none(),
        "a third connection from the same address"
    );
    let mut other = tcp_connect(s.addr, "127.0.0.6").await;
    assert!(
        tcp_on(&mut other, &query(BLOCKED, RecordType::A, None))
            .await
            .is_some()
    );
    assert_eq!(dropped(&s, "tcp_per_client").await, 1.0);
    // Once one of A's connections closes, A may open another.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut c = tcp_connect(s.addr, "127.0.0.5").await;
        if tcp_on(&mut c, &query(BLOCKED, RecordType::A, None))
            .await
            .is_some()
        {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed slot was not given back");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_of_connections_waiting_on_the_upstream_refuses_the_next_one() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Drop);
    let cfg = format!("{BLOCKING}tcp: {{max_connections: 2, max_per_client: 2}}\n");
    let s = serve(&cfg, up.addr()).await;
    let bytes = {
        let q = query("busy.example.", RecordType::A, None)
            .to_vec()
            .expect("encode");
        let mut f = u16::try_from(q.len()).expect("len").to_be_bytes().to_vec();
        f.extend_from_slice(&q);
        f
    };
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut c = tcp_connect(s.addr, "127.0.0.5").await;
        tokio::io::AsyncWriteExt::write_all(&mut c, &bytes)
            .await
            .expect("write");
        busy.push(c);
    }
    // Both queries reached the (silent) upstream: both connections are busy.
    for _ in 0..100 {
        if up.seen_name("busy.example.").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        up.seen_name("busy.example.").len() >= 2,
        "queries not forwarded"
    );
    let mut c = tcp_connect(s.addr, "127.0.0.6").await;
    assert!(
        tcp_on(&mut c, &query(BLOCKED, RecordType::A, None))
            .await
            .is_none(),
        "no connection is idle, so none is evicted"
    );
    assert_eq!(dropped(&s, "tcp_connections").await, 1.0);
    assert_eq!(dropped(&s, "tcp_evicted").await, 0.0);
    drop(busy);
    s.stop().await;
}
