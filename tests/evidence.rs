//! Evidence for auditors (issue 11, part 3): the query log's hash chain
//! (`query_log.chain: true`), written by the real binary, checked by
//! `cutoff report --verify`, and broken by an edit.

use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{query, udp};
use crate::proc::{Proc, Start, config};
use crate::util::{needs_tool, run};

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

const POLICY: &str = "networks:
  staff: [127.0.0.2/32]
  lab: [127.0.0.3/32]
lists:
  kaspersky: {builtin: kaspersky}
  exceptions: {path: \"{dir}/exceptions.txt\"}
rules:
  - {name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update, telemetry, activation], action: block, from: \"2024-09-29T00:00:00-04:00\"}
  - {name: staff-exception, networks: [staff], lists: [exceptions], action: allow}
  - {name: watch, lists: [kaspersky], action: log}
query_log: {path: \"{dir}/queries.jsonl\", events: all, chain: true}
";

/// Serves `POLICY`, sends a blocked, an excepted and a logged lookup,
/// stops; the directory (config, log) and the config path.
async fn traffic() -> (tempfile::TempDir, std::path::PathBuf) {
    let up = Fakeup::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("exceptions.txt"),
        "dnl-01.geo.kaspersky.com\n",
    )
    .expect("list");
    let yaml = config(up.addr(), POLICY).replace("{dir}", dir.path().to_str().expect("utf8"));
    let path = dir.path().join("cutoff.yaml");
    std::fs::write(&path, yaml).expect("config");
    let keep = tempfile::tempdir().expect("tempdir");
    let copy = keep.path().join("cutoff.yaml");
    std::fs::copy(&path, &copy).expect("copy");
    let mut p = Proc::start_at(keep, copy, Start::default());
    for (from, name) in [
        ("127.0.0.2", "s05.upd.kaspersky.com"),
        ("127.0.0.2", "dnl-01.geo.kaspersky.com"),
        ("127.0.0.3", "s05.upd.kaspersky.com"),
    ] {
        udp(p.dns, from, &query(name, RecordType::A, None)).await;
    }
    p.signal("TERM");
    assert!(
        p.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        p.log()
    );
    (dir, path)
}

fn evidence(config: &std::path::Path, log: &std::path::Path, format: &str) -> (String, String) {
    let (c, l) = (config.to_str().expect("utf8"), log.to_str().expect("utf8"));
    let args = [
        "report",
        "--evidence",
        "--since",
        "1h",
        "--config",
        c,
        "--log",
        l,
        "--format",
        format,
    ];
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    (out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_report_names_the_name_answered_after_the_cutoff_and_hashes_its_inputs() {
    let (dir, config) = traffic().await;
    let log = dir.path().join("queries.jsonl");
    let (out, err) = evidence(&config, &log, "json");
    let e: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    use sha2::Digest as _;
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let bytes = std::fs::read(&log).expect("log");
    assert_eq!(e["inputs"][0]["sha256"], hex(&bytes), "{out}");
    assert_eq!(e["inputs"][0]["chain"], "holds through 3 lines");
    assert!(
        err.contains(&format!("report SHA-256: {}", hex(out.as_bytes()))),
        "{err}"
    );
    let net = |name: &str| {
        e["networks"]
            .as_array()
            .expect("networks")
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .expect("network")
    };
    let staff = net("staff");
    assert_eq!(staff["enforcement"][0]["rule"], "staff-cutoff");
    assert_eq!(staff["enforcement"][0]["from"], "2024-09-29T00:00:00-04:00");
    let answered = staff["answered"].as_array().expect("answered");
    assert_eq!(answered.len(), 1, "{staff}");
    assert_eq!(answered[0]["name"], "dnl-01.geo.kaspersky.com");
    assert_eq!(answered[0]["client"], "127.0.0.2");
    assert_eq!(
        answered[0]["why"],
        "allow by rule staff-exception (phase always)"
    );
    assert_eq!(staff["after_cutoff"]["update"]["blocked"], 1, "{staff}");
    assert_eq!(staff["after_cutoff"]["update"]["allowed"], 1, "{staff}");
    let lab = net("lab");
    assert_eq!(
        lab["answered"].as_array().map(Vec::len),
        Some(0),
        "no block rule on lab: {lab}"
    );
    assert_eq!(lab["hosts"][0]["client"], "127.0.0.3", "{lab}");
    assert_eq!(lab["hosts"][0]["logged"], 1, "{lab}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_report_in_html_renders_in_a_real_browser() {
    if !needs_tool("chromium", "apt-get install chromium fonts-dejavu-core") {
        return;
    }
    let (dir, config) = traffic().await;
    let (html, _) = evidence(&config, &dir.path().join("queries.jsonl"), "html");
    let page = dir.path().join("evidence.html");
    std::fs::write(&page, &html).expect("write");
    let url = format!("file://{}", page.display());
    let dom = crate::status::chromium(&url, &["--dump-dom"]).expect("chromium --dump-dom finished");
    assert!(dom.contains("<h2>Network staff</h2>"), "{dom}");
    assert!(dom.contains("<td>dnl-01.geo.kaspersky.com</td>"), "{dom}");
    assert!(
        dom.contains("<td>allow by rule staff-exception (phase always)</td>"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_report_merges_the_client_tables_of_several_replicas() {
    let up = Fakeup::start().await;
    let (a, b) = (
        crate::harness::serve(crate::status::CONFIG, up.addr()).await,
        crate::harness::serve(crate::status::CONFIG, up.addr()).await,
    );
    let name = "s05.upd.kaspersky.com";
    udp(a.addr, "127.0.0.2", &query(name, RecordType::A, None)).await;
    udp(b.addr, "127.0.0.2", &query(name, RecordType::A, None)).await;
    udp(b.addr, "127.0.0.3", &query(name, RecordType::A, None)).await;
    let yaml = crate::status::CONFIG.replace("{upstream}", &up.addr().to_string());
    let (dir, config) = crate::util::temp_file("cutoff.yaml", &yaml);
    let log = dir.path().join("empty.jsonl");
    std::fs::write(&log, "").expect("log");
    let (ua, ub) = (format!("http://{}", a.http), format!("http://{}", b.http));
    let (c, l) = (
        config.to_str().expect("utf8").to_owned(),
        log.to_str().expect("utf8").to_owned(),
    );
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&[
            "report",
            "--evidence",
            "--since",
            "1h",
            "--config",
            &c,
            "--log",
            &l,
            "--url",
            &ua,
            "--url",
            &ub,
            "--format",
            "json",
        ])
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let hosts = |net: &str| -> Vec<(String, u64)> {
        let n = e["networks"]
            .as_array()
            .expect("networks")
            .iter()
            .find(|n| n["name"] == net)
            .cloned();
        n.expect("network")["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| {
                (
                    h["client"].as_str().unwrap_or("").to_owned(),
                    h["count"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(hosts("staff"), vec![("127.0.0.2".to_owned(), 2)], "{out}");
    assert_eq!(hosts("lab"), vec![("127.0.0.3".to_owned(), 1)], "{out}");
    a.stop().await;
    b.stop().await;
}

#[test]
fn a_report_from_both_a_url_and_a_log_is_refused_without_evidence() {
    let (code, _, err) = run(&[
        "report",
        "--url",
        "http://127.0.0.1:9",
        "--log",
        "/nonexistent",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--url and --log read different sources"),
        "{err}"
    );
}
