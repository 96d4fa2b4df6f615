//! Reloads that must not weaken the policy by accident (issue 15, point 3):
//! an emptied or comment-only file is refused while rules are running,
//! unless it says `forward_only: true`; the number of rules in force is a
//! gauge.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{Running, http, parse_metrics, query, serve, udp, value};

const RULES: &str = "
upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
  - {name: watch, lists: [kaspersky], categories: [web, brand], action: log}
";

const BLOCKED: &str = "s05.upd.kaspersky.com.";

async fn metric(s: &Running, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, body) = http(s.http, "GET", "/metrics").await;
    value(&parse_metrics(&body), name, labels)
}

async fn rcode_of_blocked(s: &Running) -> ResponseCode {
    let (m, _) = udp(s.addr, "127.0.0.1", &query(BLOCKED, RecordType::A, None)).await;
    m.metadata.response_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_or_comment_only_file_is_refused_while_rules_are_running() {
    let up = Fakeup::start().await;
    let s = serve(RULES, up.addr()).await;
    let path = s.state.config_path.clone().expect("path");
    assert_eq!(metric(&s, "cutoff_rules_active", &[]).await, Some(2.0));
    for text in [
        "",
        "# cutoff config, edited away\n",
        "upstreams: [\"127.0.0.1:1\"]\nlists:\n  kaspersky: {builtin: kaspersky}\n",
    ] {
        std::fs::write(&path, text).expect("write");
        let e = s.state.reload().expect_err(text).to_string();
        assert!(
            e.contains("has no rules but the running config has 2"),
            "{e}"
        );
        assert!(e.contains("forward_only: true"), "{e}");
        assert_eq!(
            rcode_of_blocked(&s).await,
            ResponseCode::NXDomain,
            "{text:?}"
        );
    }
    assert!(
        up.seen_name("s05.upd.kaspersky.com").is_empty(),
        "a refused reload must not let a blocked name reach the upstream"
    );
    assert_eq!(metric(&s, "cutoff_rules_active", &[]).await, Some(2.0));
    assert_eq!(
        metric(&s, "cutoff_config_reloads_total", &[("result", "failure")]).await,
        Some(3.0)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_only_true_lets_a_reload_drop_every_rule_and_the_gauge_says_zero() {
    let up = Fakeup::start().await;
    let s = serve(RULES, up.addr()).await;
    let path = s.state.config_path.clone().expect("path");
    std::fs::write(
        &path,
        format!("forward_only: true\nupstreams: [\"{}\"]\n", up.addr()),
    )
    .expect("write");
    s.state.reload().expect("an explicit forwarder reloads");
    assert_eq!(metric(&s, "cutoff_rules_active", &[]).await, Some(0.0));
    rcode_of_blocked(&s).await;
    assert_eq!(
        up.seen_name("s05.upd.kaspersky.com").len(),
        1,
        "forwarded now"
    );
    // And back to rules.
    std::fs::write(&path, RULES.replace("{upstream}", &up.addr().to_string())).expect("write");
    s.state.reload().expect("rules again");
    assert_eq!(metric(&s, "cutoff_rules_active", &[]).await, Some(2.0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_rules_reloads_another_file_without_rules() {
    let up = Fakeup::start().await;
    let s = serve("upstreams: [\"{upstream}\"]\n", up.addr()).await;
    let path = s.state.config_path.clone().expect("path");
    assert_eq!(metric(&s, "cutoff_rules_active", &[]).await, Some(0.0));
    std::fs::write(&path, "# still nothing\n").expect("write");
    s.state
        .reload()
        .expect("no rules were running, so none are lost");
    s.stop().await;
}

#[test]
fn forward_only_with_rules_or_not_a_boolean_is_an_error_with_its_line() {
    let with_rules = RULES.replace("upstreams:", "forward_only: true\nupstreams:");
    let e = cutoff::config::from_str(&with_rules, "t.yaml", std::path::Path::new("."))
        .expect_err("contradiction");
    let text = format!("{e:?}");
    assert!(
        text.contains("forward_only: true` says this config has no rules, but it has 2"),
        "{text}"
    );
    let e = cutoff::config::from_str("forward_only: yes\n", "t.yaml", std::path::Path::new("."))
        .expect_err("not a boolean");
    assert!(
        format!("{e:?}").contains("`yes` is not true or false"),
        "{e:?}"
    );
    let c = cutoff::config::from_str("forward_only: true\n", "t.yaml", std::path::Path::new("."))
        .expect("explicit forwarder");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = cutoff::config::from_str("", "t.yaml", std::path::Path::new(".")).expect("empty");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.to_string().contains("write `forward_only: true`")),
        "{:?}",
        c.warnings
    );
}
