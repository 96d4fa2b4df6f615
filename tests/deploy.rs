//! The deployment files, checked with the tools their users run: promtool
//! for the alert rules, systemd-analyze for the unit, the config checker
//! for every shipped config. A missing tool skips its check with a note
//! (CI installs them all).

use crate::util::{root, tool};

#[test]
fn alert_rules_pass_promtool() {
    match tool(
        "promtool",
        &["check", "rules", "deploy/prometheus/cutoff-rules.yaml"],
    ) {
        Some((ok, text)) => assert!(ok, "promtool check rules:\n{text}"),
        None => eprintln!("note: promtool is not installed; skipped"),
    }
}

#[test]
fn dashboard_is_valid_json_with_a_datasource_variable() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/cutoff-dashboard.json"))
        .expect("dashboard");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let vars = v["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|t| t["type"] == "datasource"),
        "a datasource variable"
    );
    assert!(v["panels"].as_array().is_some_and(|p| p.len() > 10));
}

#[test]
fn every_shipped_config_is_valid() {
    for f in [
        "deploy/cutoff.yaml",
        "deploy/container/cutoff.yaml",
        "deploy/kubernetes/cutoff.yaml",
    ] {
        if let Err(e) = cutoff::config::load(&root().join(f)) {
            panic!("{f}: {e}: {e:?}");
        }
    }
}

#[test]
fn systemd_unit_exposure_is_at_most_2() {
    match tool(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            "deploy/systemd/cutoff.service",
        ],
    ) {
        Some((ok, text)) => assert!(ok, "systemd-analyze security:\n{text}"),
        None => eprintln!("note: systemd-analyze is not installed; skipped"),
    }
}

#[test]
fn kubernetes_prometheus_rule_carries_the_alert_rules_verbatim() {
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/cutoff-rules.yaml")).expect("rules");
    let crd =
        std::fs::read_to_string(root().join("deploy/kubernetes/prometheusrule.yaml")).expect("crd");
    // Every alert of the rules file is in the PrometheusRule, expression and all.
    let alerts: Vec<&str> = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .collect();
    assert!(alerts.len() >= 8);
    for a in alerts {
        assert!(
            crd.contains(a.trim()),
            "{} missing from deploy/kubernetes/prometheusrule.yaml",
            a.trim()
        );
    }
    for expr in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        assert!(
            crd.contains(expr.trim()),
            "expression differs: {}",
            expr.trim()
        );
    }
}

#[test]
fn debian_package_metadata_is_in_cargo_toml() {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(cargo.contains("[package.metadata.deb]"));
    for asset in ["deploy/cutoff.yaml", "deploy/systemd/cutoff.logrotate"] {
        assert!(cargo.contains(asset), "{asset}");
        assert!(root().join(asset).exists(), "{asset}");
    }
    assert!(root().join("deploy/systemd/cutoff.service").exists());
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate() {
    let files = [
        "deploy/kubernetes/namespace.yaml",
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/service.yaml",
        "deploy/kubernetes/pdb.yaml",
        "deploy/kubernetes/hpa.yaml",
        "deploy/kubernetes/examples/service-loadbalancer.yaml",
    ];
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files);
    match tool("kubernetes-validate", &args) {
        Some((ok, text)) => assert!(ok, "kubernetes-validate:\n{text}"),
        None => eprintln!(
            "note: kubernetes-validate is not installed; skipped (CI installs it from PyPI)"
        ),
    }
}

/// Issue 15, point 6: the unit's `LimitNOFILE` equalled the default
/// `max_inflight`. It must cover what the shipped configs need, with room.
#[test]
fn systemd_unit_descriptor_limit_covers_the_shipped_configs_twice() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/cutoff.service")).expect("unit");
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .expect("LimitNOFILE=N in the unit");
    let default = cutoff::config::load_default().expect("default");
    let packaged =
        cutoff::config::load(&root().join("deploy/cutoff.yaml")).expect("deploy/cutoff.yaml");
    for c in [default, packaged] {
        let need = cutoff::descriptors::Need::of(&c);
        assert!(
            limit >= 2 * need.total(),
            "LimitNOFILE={limit} for {}: {need}",
            c.origin
        );
    }
}
