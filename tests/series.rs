//! The metric series a config pre-creates (at zero) are only those that can
//! ever count: no `network="none"` with allow, log or block, and no category
//! a list has no entries in.

use crate::util::temp_file;

#[test]
fn only_label_combinations_that_can_occur_are_created() {
    let (dir, _) = temp_file("local.txt", "ads.example.com\ntracker.example.net\n");
    let yaml = "networks:\n  a: [10.1.0.0/16]\n  b: [10.2.0.0/16]\n  c: [10.3.0.0/16]\n  d: [10.4.0.0/16]\nlists:\n  kaspersky: {builtin: kaspersky}\n  local: {path: local.txt}\nrules:\n  - {name: cut, lists: [kaspersky], categories: [update, telemetry], action: block}\n  - {name: mine, lists: [local], action: block}\n";
    let config = cutoff::config::from_str(yaml, "series.yaml", dir.path()).expect("config");
    let metrics = cutoff::metrics::Metrics::new();
    let _counters = metrics.counters(&config, &[]);
    let text = metrics.render();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("cutoff_queries_total{") || l.starts_with("cutoff_policy_matches_total{")
        })
        .collect();
    for line in &series {
        if line.contains("network=\"none\"") {
            assert!(line.contains("action=\"refuse\""), "{line}");
        } else if line.starts_with("cutoff_queries_total") {
            assert!(!line.contains("action=\"refuse\""), "{line}");
        }
        if line.contains("list=\"local\"") {
            assert!(line.contains("category=\"none\""), "{line}");
        }
        if line.contains("list=\"kaspersky\"") {
            assert!(
                line.contains("category=\"update\"") || line.contains("category=\"telemetry\""),
                "{line}"
            );
        }
    }
    let queries = series
        .iter()
        .filter(|l| l.starts_with("cutoff_queries_total"))
        .count();
    // 4 networks and `default` x allow/log/block x udp/tcp, and none x
    // refuse x udp/tcp.
    assert_eq!(queries, 5 * 3 * 2 + 2, "{series:#?}");
    // 5 networks x (kaspersky x 2 categories + local x none + the two
    // `bypass:` rules a blocking config gets, x none), one action each.
    let matches = series.len() - queries;
    assert_eq!(matches, 5 * 5, "{series:#?}");
}
