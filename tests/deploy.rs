//! The deployment files, checked with the tools their users run: promtool
//! for the alert rules, systemd-analyze for the unit, the config checker
//! for every shipped config. A missing tool skips its check with a note
//! (CI installs them all).

use std::process::Command;

use crate::util::root;

/// Runs a tool; `None` when it is not installed.
fn tool(program: &str, args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

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
