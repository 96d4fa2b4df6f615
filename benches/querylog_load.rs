//! The query log under a steady load (moved out of `cargo test`, issue 14:
//! a 10-second run is a benchmark, not a test): 2,000 UDP queries a second
//! for 10 seconds against the in-process server, every one answered and
//! written as exactly one query-log line. Prints what it measured and exits
//! non-zero when a query or a line is missing.
//!
//! ```sh
//! cargo bench --bench querylog_load
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

// The tests' in-process upstream and server harness, shared as they are.
#[allow(dead_code, unreachable_pub)]
#[path = "../tests"]
mod shared {
    pub(crate) mod fakeup;
    pub(crate) mod harness;
}
use shared::{fakeup, harness};

const CONFIG: &str = "upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
networks:
  staff: [127.0.0.2/32]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update, telemetry, activation], action: block}
  - {name: watch, lists: [kaspersky], action: log}
cache: {size: 100}
query_log: {path: \"LOG\", events: all}
";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (answered, lines, total, took) = rt.block_on(run());
    println!(
        "querylog_load: {total} queries at 2000 qps in {took:.1?}: {answered} answered, {lines} log lines"
    );
    if answered != total || lines != total {
        eprintln!("querylog_load: FAILED (every query must be answered and logged once)");
        std::process::exit(1);
    }
}

async fn run() -> (usize, usize, usize, Duration) {
    let up = fakeup::Fakeup::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("q.jsonl");
    let config = CONFIG.replace("LOG", log.to_str().expect("utf8"));
    let s = harness::serve(&config, up.addr()).await;
    let sock = std::sync::Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("bind"),
    );
    let names = [
        "s05.upd.kaspersky.com.",
        "www.kaspersky.com.",
        "example.com.",
        "www.example.com.",
    ];
    let total = 20_000usize;
    let start = Instant::now();
    let rx = sock.clone();
    let counter = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut ids = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(40);
        while ids.len() < total && Instant::now() < deadline {
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf)).await
                && n >= 2
            {
                ids.insert(u16::from_be_bytes([buf[0], buf[1]]));
            }
        }
        ids.len()
    });
    // 2,000 queries a second, in 10 ms steps of 20, for 10 seconds.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0usize;
    while sent < total {
        tick.tick().await;
        for _ in 0..20 {
            let mut q = harness::query(names[sent % names.len()], RecordType::A, None);
            q.metadata.id = u16::try_from(sent % 65536).expect("id");
            sock.send_to(&q.to_vec().expect("encode"), s.addr)
                .await
                .expect("send");
            sent += 1;
        }
    }
    let answered = counter.await.expect("receiver");
    let took = start.elapsed();
    s.state
        .query_log
        .as_ref()
        .expect("log")
        .flush(Duration::from_secs(10));
    let lines = std::fs::read_to_string(&log).expect("log").lines().count();
    s.stop().await;
    (answered, lines, total, took)
}
