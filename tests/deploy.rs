//! The deployment files, checked with the tools their users run: promtool
//! for the alert rules, systemd-analyze for the unit, the config checker
//! for every shipped config. A missing tool fails under CI=true and is a
//! visible skip elsewhere (`util::needs`; .ci/setup installs them all).

use crate::util::{needs_tool, root, tool};

#[test]
fn alert_rules_pass_promtool() {
    if !needs_tool("promtool", "apt-get install prometheus") {
        return;
    }
    let (ok, text) = tool(
        "promtool",
        &["check", "rules", "deploy/prometheus/cutoff-rules.yaml"],
    )
    .expect("promtool");
    assert!(ok, "promtool check rules:\n{text}");
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
    if !needs_tool("systemd-analyze", "apt-get install systemd") {
        return;
    }
    let (ok, text) = tool(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            "deploy/systemd/cutoff.service",
        ],
    )
    .expect("systemd-analyze");
    assert!(ok, "systemd-analyze security:\n{text}");
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
    if !needs_tool(
        "kubernetes-validate",
        "pip install kubernetes-validate in a virtualenv; .ci/setup does",
    ) {
        return;
    }
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files);
    let (ok, text) = tool("kubernetes-validate", &args).expect("kubernetes-validate");
    assert!(ok, "kubernetes-validate:\n{text}");
}
