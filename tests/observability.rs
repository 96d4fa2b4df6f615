//! Metrics, the query log, the client table and the admin endpoint, checked
//! over real sockets after known queries.

use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::fakeup::Fakeup;
use crate::harness::{http, parse_metrics, query, serve, tcp, udp, udp_raw, value};

fn config(log: &str, extra: &str) -> String {
    format!(
        "upstreams: [\"{{upstream}}\"]
upstream_timeout: 500ms
networks:
  staff: [127.0.0.2/32]
  lab: [127.0.0.3/32]
lists:
  kaspersky: {{builtin: kaspersky}}
rules:
  - {{name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update, telemetry, activation], action: block}}
  - {{name: watch, lists: [kaspersky], action: log}}
query_log: {{path: \"{log}\", events: all}}
{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_queries_sent() {
    let up = Fakeup::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("q.jsonl");
    let s = serve(&config(log.to_str().expect("utf8"), ""), up.addr()).await;

    // Before any query: every family is there, at zero.
    let (code, body) = http(s.http, "GET", "/metrics").await;
    assert_eq!(code, 200);
    let m = parse_metrics(&body);
    assert_eq!(
        value(
            &m,
            "cutoff_queries_total",
            &[
                ("network", "staff"),
                ("action", "block"),
                ("protocol", "udp")
            ]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "cutoff_rule_enforcing",
            &[("network", "staff"), ("rule", "staff-cutoff")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "cutoff_rule_enforcing",
            &[("network", "lab"), ("rule", "watch")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "cutoff_list_entries",
            &[("list", "kaspersky"), ("category", "update")]
        ),
        Some(83.0)
    );
    assert_eq!(
        value(&m, "cutoff_kaspersky_clients", &[("network", "staff")]),
        Some(0.0)
    );

    for _ in 0..3 {
        udp(
            s.addr,
            "127.0.0.2",
            &query("s05.upd.kaspersky.com.", RecordType::A, Some(1232)),
        )
        .await;
    }
    tcp(
        s.addr,
        "127.0.0.2",
        &query("s05.upd.kaspersky.com.", RecordType::A, None),
    )
    .await;
    udp(
        s.addr,
        "127.0.0.3",
        &query("www.kaspersky.com.", RecordType::A, None),
    )
    .await;
    udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;

    let (_, body) = http(s.http, "GET", "/metrics").await;
    let m = parse_metrics(&body);
    let q = |net: &str, action: &str, proto: &str| {
        value(
            &m,
            "cutoff_queries_total",
            &[("network", net), ("action", action), ("protocol", proto)],
        )
    };
    assert_eq!(q("staff", "block", "udp"), Some(3.0));
    assert_eq!(q("staff", "block", "tcp"), Some(1.0));
    assert_eq!(q("lab", "log", "udp"), Some(1.0));
    assert_eq!(q("default", "allow", "udp"), Some(2.0));
    let matches = |net: &str, cat: &str, action: &str, rule: &str| {
        value(
            &m,
            "cutoff_policy_matches_total",
            &[
                ("network", net),
                ("list", "kaspersky"),
                ("category", cat),
                ("action", action),
                ("rule", rule),
            ],
        )
    };
    assert_eq!(
        matches("staff", "update", "block", "staff-cutoff"),
        Some(4.0)
    );
    assert_eq!(matches("lab", "brand", "log", "watch"), Some(1.0));
    // 4 blocked + www.kaspersky.com, which the fake upstream does not know.
    assert_eq!(
        value(&m, "cutoff_responses_total", &[("rcode", "NXDOMAIN")]),
        Some(5.0)
    );
    assert_eq!(
        value(&m, "cutoff_responses_total", &[("rcode", "NOERROR")]),
        Some(2.0)
    );
    assert_eq!(value(&m, "cutoff_cache_misses_total", &[]), Some(2.0));
    assert_eq!(value(&m, "cutoff_cache_hits_total", &[]), Some(1.0));
    assert_eq!(
        value(
            &m,
            "cutoff_query_duration_seconds_count",
            &[("path", "blocked")]
        ),
        Some(4.0)
    );
    let up_label = up.addr().to_string();
    assert_eq!(
        value(
            &m,
            "cutoff_upstream_requests_total",
            &[("upstream", up_label.as_str()), ("result", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "cutoff_kaspersky_clients", &[("network", "staff")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "cutoff_kaspersky_clients", &[("network", "lab")]),
        Some(1.0)
    );
    // No series carries a client address or a query name.
    assert!(
        !body.contains("127.0.0.2")
            && !body.contains("kaspersky.com")
            && !body.contains("example.com"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_has_help_and_promtool_accepts_the_output() {
    let up = Fakeup::start().await;
    let s = serve(&config("-", ""), up.addr()).await;
    udp(
        s.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    let (_, body) = http(s.http, "GET", "/metrics").await;
    // The URL-list families have series only with URL lists and the
    // refresher: tests/url_lists.rs checks their HELP and TYPE.
    let url_only = [
        "cutoff_list_refresh_total",
        "cutoff_list_last_success_timestamp_seconds",
        // Only with `rpz:` zones: tests/rpz.rs checks them.
        "cutoff_rpz_serial",
        "cutoff_rpz_notify_total",
    ];
    for (name, kind, _) in cutoff::metrics::FAMILIES {
        // Only with URL lists or `listen_tls`: their HELP is checked in
        // url_lists.rs and dot.rs.
        if url_only.contains(name) || *name == "cutoff_tls_certificate_expiry_timestamp_seconds" {
            continue;
        }
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            body.contains(&format!("# TYPE {name} {kind}")),
            "no TYPE {kind} for {name}:\n{body}"
        );
    }
    if !crate::util::needs_tool("promtool", "apt-get install prometheus") {
        s.stop().await;
        return;
    }
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(body.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("promtool");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "promtool check metrics:\n{text}");
        }
        Err(e) => panic!("promtool: {e}"),
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_is_read_only_and_reports_health() {
    let up = Fakeup::start().await;
    let s = serve(&config("-", ""), up.addr()).await;
    assert_eq!(http(s.http, "GET", "/healthz").await.0, 200);
    assert_eq!(http(s.http, "GET", "/readyz").await.0, 200);
    assert_eq!(http(s.http, "POST", "/metrics").await.0, 405);
    assert_eq!(http(s.http, "DELETE", "/api/v1/clients").await.0, 405);
    assert_eq!(http(s.http, "GET", "/nope").await.0, 404);
    udp(
        s.addr,
        "127.0.0.2",
        &query("dnl-03.geo.kaspersky.com.", RecordType::A, None),
    )
    .await;
    let (code, body) = http(s.http, "GET", "/api/v1/clients?since=1h").await;
    assert_eq!(code, 200);
    let rows: Vec<cutoff::clients::ClientRow> = serde_json::from_str(&body).expect("json");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].network.as_str(),
            rows[0].client.as_str(),
            rows[0].blocked
        ),
        ("staff", "127.0.0.2", 1)
    );
    assert_eq!(
        http(s.http, "GET", "/api/v1/clients?since=yesterday")
            .await
            .0,
        400
    );
    s.stop().await;
}

/// Issue 15, point 1: a `since` far enough back overflowed and panicked;
/// with `panic = "abort"` in release, one unauthenticated GET killed the
/// resolver. Now each is a 400 that says what is accepted, and the server
/// keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_out_of_range_is_a_400_and_the_server_keeps_serving() {
    let up = Fakeup::start().await;
    let s = serve(&config("-", ""), up.addr()).await;
    for since in [
        "5000000d",
        "9223372036854775807s",
        "99999999999999999999d",
        "2024-02-30",
        "yesterday",
        "%FF",
    ] {
        let (code, body) = http(s.http, "GET", &format!("/api/v1/clients?since={since}")).await;
        assert_eq!(code, 400, "{since}: {body}");
        assert!(
            body.contains("RFC 3339") || body.contains("query"),
            "{since}: {body}"
        );
    }
    let (code, body) = http(s.http, "GET", "/api/v1/clients?since=5000000d").await;
    assert!(body.contains("reaches too far back"), "{code} {body}");
    for since in ["2024-09-29", "2024-09-29T00:00:00-04:00", "30m"] {
        let (code, body) = http(s.http, "GET", &format!("/api/v1/clients?since={since}")).await;
        assert_eq!(code, 200, "{since}: {body}");
    }
    let (answer, _) = udp(
        s.addr,
        "127.0.0.2",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    s.stop().await;
}

/// A query for a name made of raw labels (any bytes).
fn raw_query(labels: &[&[u8]], id: u16) -> Vec<u8> {
    let name = Name::from_labels(labels.iter().map(|l| l.to_vec())).expect("name");
    let mut q = Message::query();
    q.metadata.id = id;
    q.add_query(Query::query(name, RecordType::A));
    q.to_vec().expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_each_give_one_json_line_that_round_trips() {
    let up = Fakeup::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("q.jsonl");
    let s = serve(&config(log.to_str().expect("utf8"), ""), up.addr()).await;
    let names: Vec<Vec<&[u8]>> = vec![
        vec![b"evil\nname", b"com"],
        vec![b"quo\"te", b"back\\slash", b"com"],
        vec![b"\x1b[31mred", b"\x00nul", b"com"],
        vec![b"\xff\xfe\x80", b"com"],
        vec![b"a.b", b"kaspersky", b"com"],
        vec![b"<script>", b"com"],
        vec![b"line\r\nbreak", b"com"],
    ];
    for (i, labels) in names.iter().enumerate() {
        let bytes = raw_query(labels, 100 + i as u16);
        assert!(
            udp_raw(s.addr, "127.0.0.1", &bytes, Duration::from_secs(5))
                .await
                .is_some()
        );
    }
    s.state
        .query_log
        .as_ref()
        .expect("log")
        .flush(Duration::from_secs(5));
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "{text}");
    assert!(
        !text.bytes().any(|b| b < 0x20 && b != b'\n'),
        "no raw control bytes"
    );
    // A line is written when its query is observed, after its reply went
    // out: with two workers the next query can be logged first, so the
    // names are compared as sets, each line to exactly one name.
    let mut backs: Vec<Vec<Vec<u8>>> = lines
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            cutoff::querylog::unescape_name(v["qname"].as_str().expect("qname")).expect("unescape")
        })
        .collect();
    let mut originals: Vec<Vec<Vec<u8>>> = names
        .iter()
        .map(|labels| labels.iter().map(|l| l.to_vec()).collect())
        .collect();
    backs.sort();
    originals.sort();
    assert_eq!(backs, originals, "{text}");
    s.stop().await;
}
