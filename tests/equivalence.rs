//! One question, four spellings (issue 14, point 8): sent plain, with a
//! compressed name, with an ECS option, and over TCP, it gets the same reply
//! bytes (ID and TTLs aside), moves the same counters and writes the same
//! query-log line. The first three reach the pipeline by two ways (the byte
//! reader, and the full parse that re-encodes what the reader declines), so
//! this is what proves there is one path behind them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cutoff::wire;
use tokio::io::AsyncWriteExt;

use crate::fakeup::Fakeup;
use crate::harness::{Running, http, parse_metrics, read_frame, serve, tcp_connect, udp_raw};

const CONFIG: &str = "upstreams: [\"{upstream}\"]
upstream_timeout: 2s
networks:
  staff: [127.0.0.2/32]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update], action: block}
query_log: {path: \"LOG\", events: all}
";

/// The query's name as labels, then the root as given (`tail`).
fn query(name: &str, tail: &[u8], opt_rdata: &[u8]) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).expect("label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(tail);
    q.extend_from_slice(&[0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&u16::try_from(opt_rdata.len()).expect("rdata").to_be_bytes());
    q.extend_from_slice(opt_rdata);
    q
}

/// The four spellings of `name` A? with EDNS.
fn spellings(name: &str) -> [(&'static str, Vec<u8>); 4] {
    // A compression pointer to offset 4, whose byte (QDCOUNT's high byte,
    // 0) reads as the root label: the same name, compressed.
    let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2];
    [
        ("plain", query(name, &[0], &[])),
        ("compressed", query(name, &[0xc0, 4], &[])),
        ("ecs", query(name, &[0], &ecs)),
        ("tcp", query(name, &[0], &[])),
    ]
}

async fn ask(s: &Running, how: &str, bytes: &[u8]) -> Vec<u8> {
    if how == "tcp" {
        let mut stream = tcp_connect(s.addr, "127.0.0.2").await;
        let len = u16::try_from(bytes.len()).expect("len").to_be_bytes();
        stream
            .write_all(&[&len[..], bytes].concat())
            .await
            .expect("send");
        return read_frame(&mut stream).await.expect("an answer over TCP");
    }
    udp_raw(s.addr, "127.0.0.2", bytes, Duration::from_secs(5))
        .await
        .expect("an answer over UDP")
}

/// The reply with its ID and every TTL zeroed (a cached answer ages).
fn comparable(mut reply: Vec<u8>) -> Vec<u8> {
    let layout = wire::walk(&reply).expect("the reply walks");
    wire::set_id(&mut reply, 0);
    for at in layout.ttls {
        wire::set_ttl_at(&mut reply, usize::from(at), 0);
    }
    reply
}

/// Every counter and histogram count, by name and labels (the protocol
/// label left out: TCP is meant to differ there).
async fn counters(http_addr: SocketAddr) -> BTreeMap<String, f64> {
    let (_, body) = http(http_addr, "GET", "/metrics").await;
    parse_metrics(&body)
        .into_iter()
        .filter(|s| s.name.ends_with("_total") || s.name.ends_with("_count"))
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "protocol")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (format!("{}{{{}}}", s.name, labels.join(",")), s.value)
        })
        .fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_insert(0.0) += v;
            m
        })
}

/// What one send gives: the comparable reply, the counters it moved, its
/// log line.
type Seen = (Vec<u8>, Vec<(String, f64)>, serde_json::Value);

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// The query log's last line, without what differs between two sends of
/// one question (time, duration, source port, protocol).
fn last_line(s: &Running, log: &std::path::Path, lines: usize) -> serde_json::Value {
    s.state
        .query_log
        .as_ref()
        .expect("log")
        .flush(Duration::from_secs(5));
    let text = std::fs::read_to_string(log).expect("log");
    let all: Vec<&str> = text.lines().collect();
    assert_eq!(all.len(), lines, "one line per query: {text}");
    let mut v: serde_json::Value = serde_json::from_str(all[lines - 1]).expect("JSON");
    for key in ["time", "duration_us", "client_port", "protocol"] {
        v.as_object_mut().expect("object").remove(key);
    }
    v
}

/// The counters once the query log has counted `lines` records: a record is
/// queued after its reply is sent, so it may be counted a moment after the
/// client has its answer. Bounded: 500 looks, then the counters as they are
/// (and the comparison fails on them).
async fn settled(s: &Running, lines: usize) -> BTreeMap<String, f64> {
    let want = lines as f64;
    for _ in 0..500 {
        s.state
            .query_log
            .as_ref()
            .expect("log")
            .flush(Duration::from_secs(5));
        let now = counters(s.http).await;
        if now.get("cutoff_querylog_records_total{}").copied() == Some(want) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    counters(s.http).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_question_spelled_four_ways_gets_one_reply_one_count_and_one_log_line() {
    let up = Fakeup::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("q.jsonl");
    let s = serve(
        &CONFIG.replace("LOG", log.to_str().expect("utf8")),
        up.addr(),
    )
    .await;
    let mut lines = 0;
    // Warm the cache, so that every spelling of the allowed name is a hit.
    ask(&s, "plain", &spellings("www.example.com")[0].1).await;
    lines += 1;
    let mut before = settled(&s, lines).await;
    for name in ["s05.upd.kaspersky.com", "www.example.com"] {
        let mut first: Option<Seen> = None;
        for (how, bytes) in spellings(name) {
            let reply = comparable(ask(&s, how, &bytes).await);
            lines += 1;
            let line = last_line(&s, &log, lines);
            let after = settled(&s, lines).await;
            let moved = delta(&before, &after);
            before = after;
            assert!(!moved.is_empty(), "{name} {how}: no counter moved");
            match &first {
                None => first = Some((reply, moved, line)),
                Some((r, m, l)) => {
                    assert_eq!(&reply, r, "{name}: {how} reply differs from plain");
                    assert_eq!(&moved, m, "{name}: {how} counters differ from plain");
                    assert_eq!(&line, l, "{name}: {how} log line differs from plain");
                }
            }
        }
    }
    s.stop().await;
}
