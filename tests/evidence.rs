//! Evidence for auditors (issue 11, part 3): the query log's hash chain
//! (`query_log.chain: true`), written by the real binary, checked by
//! `cutoff report --verify`, and broken by an edit.

use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{query, udp};
use crate::proc::{Proc, Start, config};
use crate::util::run;

const RULES: &str = "lists:\n  kaspersky: {builtin: kaspersky}\nrules:\n  - {name: cutoff, lists: [kaspersky], action: block}\nquery_log: {path: \"{dir}/queries.jsonl\", events: all, chain: true}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_query_log_verifies_and_an_edited_line_is_named() {
    let up = Fakeup::start().await;
    let mut p = Proc::start(&config(up.addr(), RULES), Start::default());
    for name in [
        "s05.upd.kaspersky.com",
        "example.com",
        "dnl-01.geo.kaspersky.com",
    ] {
        udp(p.dns, "127.0.0.1", &query(name, RecordType::A, None)).await;
    }
    p.signal("TERM");
    assert!(
        p.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        p.log()
    );
    let dir = p.config.parent().expect("dir").to_owned();
    let log = dir.join("queries.jsonl");
    let text = std::fs::read_to_string(&log).expect("the query log");
    assert_eq!(text.lines().count(), 3, "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(v["chain"].as_str().map(str::len), Some(64), "{line}");
    }
    let path = log.to_str().expect("utf8");
    let (code, out, err) = run(&["report", "--verify", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("OK: the chain holds through 3 lines\n"),
        "{out}"
    );
    assert!(out.contains(&format!("chain starts at {path}:1 ")), "{out}");

    let edited = text.replacen("example.com", "examp1e.com", 1);
    assert_ne!(edited, text);
    std::fs::write(&log, edited).expect("write");
    let (code, out, _) = run(&["report", "--verify", path]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "BROKEN: {path}: line 2: its chain does not follow"
        )),
        "{out}"
    );
}

#[test]
fn verify_of_an_unchained_log_says_so() {
    let (_dir, path) = crate::util::temp_file(
        "queries.jsonl",
        "{\"time\":\"2026-12-01T00:00:00Z\",\"qname\":\"a.kaspersky.com\"}\n",
    );
    let (code, _, err) = run(&["report", "--verify", path.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "no chained line in 1 lines: was the log written with `query_log.chain: true`?"
        ),
        "{err}"
    );
}
