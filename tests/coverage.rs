//! Issue 8: the cut-off holds for Kaspersky hosts no list names. The shipped
//! default and the strict profile over real sockets, against an upstream
//! that records what it was asked: unlisted hosts under Kaspersky's
//! infrastructure zones are blocked and never forwarded, exemptions and
//! look-alikes are forwarded, bypass names are answered locally, and
//! unclassified names reach the query log, the metric and
//! `cutoff report --unclassified`.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{ede, http, parse_metrics, query, serve, tcp, udp, value};
use crate::util::{root, run};

/// The embedded default with the test's upstream and a query log.
fn default_config(log: Option<&std::path::Path>) -> String {
    let mut yaml = cutoff::config::DEFAULT_YAML.replace(
        "upstreams:\n  - system",
        "upstreams: [\"{upstream}\"]\nupstream_timeout: 1s",
    );
    if let Some(log) = log {
        yaml.push_str(&format!(
            "query_log: {{path: \"{}\", events: all}}\n",
            log.display()
        ));
    }
    yaml
}

/// Update, telemetry, activation and download hosts from the zone research
/// (manifests, tool scripts, mirror lists) that are not list entries.
const UNLISTED: &[&str] = &[
    "devbuilds.s.kaspersky-labs.com",
    "rescuedisk.s.kaspersky-labs.com",
    "dm.kaspersky-labs.com",
    "api-router.kaspersky-labs.com",
    "updates2.kaspersky-labs.com",
    "downloads-us1.kaspersky-labs.com",
    "ftp.downloads1.kaspersky-labs.com",
    "ksn-crypto-file-geo.kaspersky-labs.com",
    "ppt-issuer.ksn.kaspersky-labs.com",
    "pdc5.pa2.pdc.kaspersky.com",
    "www.dnl-01.geo.kaspersky.com",
];

/// Names the default must forward: exemptions, web, migration, look-alikes.
const FORWARDED: &[&str] = &[
    "opentip.kaspersky.com",
    "taxii.tip.kaspersky.com",
    "support.kaspersky.com",
    "www.kaspersky.com",
    "ultravpn.com",
    "notkaspersky.com",
    "kaspersky.com.example.org",
    "mykaspersky-labs.com",
    "example.com",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_blocks_unlisted_infrastructure_hosts_and_forwards_the_rest() {
    let up = Fakeup::start().await;
    let s = serve(&default_config(None), up.addr()).await;
    for name in UNLISTED {
        let (m, _) = udp(s.addr, "127.0.0.1", &query(name, RecordType::A, Some(1232))).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        let (code, text) = ede(&m).expect("EDE on a blocked answer");
        assert_eq!(code, 15, "{name}");
        assert!(text.contains("kaspersky-cutoff"), "{name}: {text}");
        let m = tcp(s.addr, "127.0.0.1", &query(name, RecordType::AAAA, None)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    assert!(
        up.seen().is_empty(),
        "blocked names left the box: {:?}",
        up.seen()
    );
    for name in FORWARDED {
        let (m, _) = udp(s.addr, "127.0.0.1", &query(name, RecordType::A, Some(1232))).await;
        assert_ne!(m.metadata.response_code, ResponseCode::ServFail, "{name}");
        assert!(ede(&m).is_none_or(|(code, _)| code != 15), "{name}");
        assert_eq!(up.seen_name(name).len(), 1, "{name} was forwarded once");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_names_are_answered_locally_and_never_forwarded() {
    let up = Fakeup::start().await;
    let s = serve(&default_config(None), up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("use-application-dns.net.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let svcb = RecordType::from(64);
    for name in ["_dns.resolver.arpa.", "resolver.arpa."] {
        let (m, _) = udp(s.addr, "127.0.0.1", &query(name, svcb, Some(1232))).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}: NODATA");
        let m = tcp(s.addr, "127.0.0.1", &query(name, svcb, None)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    // Public resolvers are only logged by the default: forwarded.
    udp(
        s.addr,
        "127.0.0.1",
        &query("dns.google.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(up.seen_name("dns.google").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_profile_blocks_every_kaspersky_zone_but_the_exemptions() {
    let up = Fakeup::start().await;
    let strict = std::fs::read_to_string(root().join("docs/examples/strict.yaml")).expect("strict");
    let yaml = strict.replace("upstreams:\n  - 10.0.0.2", "upstreams: [\"{upstream}\"]");
    assert_ne!(
        yaml, strict,
        "the example names its upstream as the test expects"
    );
    let s = serve(&yaml, up.addr()).await;
    for name in UNLISTED.iter().chain(&[
        "www.kaspersky.com",
        "support.kaspersky.com",
        "kaspersky.co.uk",
        "www.securelist.com",
        "dns.google",
        "cloudflare-dns.com",
        "mask.icloud.com",
        "use-application-dns.net",
    ]) {
        let (m, _) = udp(s.addr, "127.0.0.5", &query(name, RecordType::A, Some(1232))).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(ede(&m).map(|(code, _)| code), Some(15), "{name}");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    for name in [
        "opentip.kaspersky.com",
        "tip.kaspersky.com",
        "wlinfo.kaspersky.com",
        "api.tip.kaspersky.com",
        "taxii.tip.kaspersky.com",
        "k-asap.com",
        "ultravpn.com",
        "notkaspersky.com",
    ] {
        let (m, _) = udp(s.addr, "127.0.0.5", &query(name, RecordType::A, Some(1232))).await;
        assert!(ede(&m).is_none_or(|(code, _)| code != 15), "{name}");
        assert_eq!(up.seen_name(name).len(), 1, "{name} was forwarded");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclassified_names_reach_the_log_the_metric_and_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("queries.jsonl");
    let up = Fakeup::start().await;
    let s = serve(&default_config(Some(&log)), up.addr()).await;
    for (from, name) in [
        ("127.0.0.1", "dm.kaspersky-labs.com."),
        ("127.0.0.2", "dm.kaspersky-labs.com."),
        ("127.0.0.1", "brand-new-portal.kaspersky.com."),
        ("127.0.0.1", "s05.upd.kaspersky.com."),
    ] {
        udp(s.addr, from, &query(name, RecordType::A, Some(1232))).await;
    }
    let (_, body) = http(s.http, "GET", "/metrics").await;
    let m = parse_metrics(&body);
    let unclassified = |category, action| {
        value(
            &m,
            "cutoff_unclassified_queries_total",
            &[
                ("list", "kaspersky"),
                ("category", category),
                ("action", action),
            ],
        )
    };
    assert_eq!(unclassified("update", "block"), Some(2.0));
    assert_eq!(unclassified("brand", "log"), Some(1.0));
    assert_eq!(unclassified("update", "log"), Some(0.0));
    // The bypass rules block at all times: they do not say the cut-off is in force.
    let enforcing = |rule| {
        value(
            &m,
            "cutoff_rule_enforcing",
            &[("network", "default"), ("rule", rule)],
        )
    };
    assert_eq!(enforcing("kaspersky-cutoff"), Some(1.0));
    assert_eq!(enforcing("bypass:ddr"), None);
    s.state
        .query_log
        .as_ref()
        .expect("query log")
        .flush(Duration::from_secs(5));
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    let flags: Vec<bool> = lines
        .iter()
        .map(|l| {
            l["unclassified"]
                .as_bool()
                .expect("unclassified is a boolean")
        })
        .collect();
    assert_eq!(flags, [true, true, true, false]);
    s.stop().await;
    let (code, out, err) = run(&["report", "--unclassified", "--log", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[1].starts_with("dm.kaspersky-labs.com"), "{out}");
    assert!(
        rows[1].contains(" 2 ") && rows[1].contains("default"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("brand-new-portal.kaspersky.com"),
        "{out}"
    );
}

#[test]
fn explain_allows_every_exempt_entry_on_every_network_and_profile() {
    let list = cutoff::blocklist::Catalogue::parse(cutoff::blocklist::KASPERSKY_YAML, "k")
        .expect("shipped list");
    let exempt: Vec<String> = list
        .entries
        .iter()
        .filter(|e| e.category == cutoff::blocklist::Category::Exempt)
        .map(|e| e.domain.clone())
        .collect();
    assert!(exempt.len() >= 5, "{exempt:?}");
    let strict = root().join("docs/examples/strict.yaml");
    let office = root().join("docs/examples/office.yaml");
    for name in &exempt {
        for config in [None, Some(&strict), Some(&office)] {
            for client in ["10.10.1.1", "10.30.0.7", "10.0.0.9"] {
                let mut args = vec!["--at", "2025-06-01T00:00:00Z"];
                if let Some(c) = config {
                    args.extend(["--config", c.to_str().unwrap()]);
                }
                args.extend(["--client", client, name]);
                let e = explain_json(&args);
                assert_eq!(e["action"], "allow", "{name} {config:?} {client}: {e}");
                if e["rule"].is_string() {
                    assert_eq!(e["category"], "exempt", "{e}");
                }
            }
        }
    }
}

/// `cutoff explain --json ARGS`: exit 0 and the parsed object.
fn explain_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explain", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = run(&all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn explain_checks_answer_addresses_as_serve_does() {
    let e = explain_json(&["--client", "10.0.0.1", "example.com"]);
    assert_eq!(
        (e["action"].as_str(), e["address_rules_apply"].as_bool()),
        (Some("allow"), Some(true))
    );
    let e = explain_json(&[
        "--client",
        "10.0.0.1",
        "--answer",
        "192.0.2.1",
        "--answer",
        "91.103.66.155",
        "example.com",
    ]);
    assert_eq!(e["action"], "log", "{e}");
    assert_eq!(e["rule"], "kaspersky-addresses", "{e}");
    assert_eq!(e["via"], "answer address 91.103.66.155", "{e}");
    let strict = root().join("docs/examples/strict.yaml");
    let strict = strict.to_str().unwrap();
    let at = "2025-01-01T00:00:00Z";
    let answer = "91.103.66.155";
    let e = explain_json(&[
        "--config",
        strict,
        "--client",
        "10.0.0.1",
        "--at",
        at,
        "--answer",
        answer,
        "example.com",
    ]);
    assert_eq!(
        (e["action"].as_str(), e["rule"].as_str()),
        (Some("block"), Some("strict-addresses")),
        "{e}"
    );
    // An exemption holds whatever its answer points at (allow beats block).
    let e = explain_json(&[
        "--config",
        strict,
        "--client",
        "10.0.0.1",
        "--at",
        at,
        "--answer",
        answer,
        "opentip.kaspersky.com",
    ]);
    assert_eq!(e["action"], "allow", "{e}");
}

#[test]
fn explain_names_the_zone_and_says_when_a_name_is_unclassified() {
    let (_, out, _) = run(&[
        "explain",
        "--client",
        "10.0.0.1",
        "--at",
        "2025-01-01T00:00:00Z",
        "dm.kaspersky-labs.com",
    ]);
    assert!(
        out.starts_with("BLOCK for 10.0.0.1 asking dm.kaspersky-labs.com"),
        "{out}"
    );
    assert!(
        out.contains("entry    kaspersky-labs.com (suffix, category update)"),
        "{out}"
    );
    assert!(
        out.contains("zone     infrastructure zone; no entry names this host: unclassified"),
        "{out}"
    );
    let e = explain_json(&[
        "--client",
        "10.0.0.1",
        "--at",
        "2025-01-01T00:00:00Z",
        "downloads-us1.kaspersky-labs.com",
    ]);
    assert_eq!(e["entry"], "downloads*.kaspersky-labs.com", "{e}");
    assert_eq!(e["unclassified"], false, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_inside_a_label_does_not_put_a_name_under_a_zone() {
    let up = Fakeup::start().await;
    let s = serve(&default_config(None), up.addr()).await;
    // One label `dm.kaspersky-labs`, then `com`: not a name under kaspersky-labs.com.
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("dm\\.kaspersky-labs.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert!(ede(&m).is_none_or(|(code, _)| code != 15), "not blocked");
    assert_eq!(up.seen().len(), 1, "forwarded: {:?}", up.seen());
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("dm.kaspersky-labs.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(ede(&m).map(|(code, _)| code), Some(15));
    s.stop().await;
}
