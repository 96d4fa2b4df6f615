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
fn alert_rule_unit_tests_pass_promtool() {
    if !needs_tool("promtool", "apt-get install prometheus") {
        return;
    }
    let (ok, text) = tool(
        "promtool",
        &["test", "rules", "deploy/prometheus/cutoff-rules.test.yaml"],
    )
    .expect("promtool");
    assert!(ok, "promtool test rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
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

/// deploy/debian/build-deb.sh packs the built binary as it is; the control
/// fields and the file list are what deploy/debian/README.md says.
#[test]
fn the_debian_package_holds_the_binary_the_unit_and_the_conffiles() {
    if !needs_tool("dpkg-deb", "apt-get install dpkg") {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let script = root().join("deploy/debian/build-deb.sh");
    let built = std::process::Command::new(&script)
        .args([env!("CARGO_BIN_EXE_cutoff"), "amd64"])
        .arg(out.path())
        .env("DEB_COMPRESS", "-Zgzip -z1")
        .output()
        .expect("build-deb.sh");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    assert!(deb.ends_with("/cutoff_0.1.0-1_amd64.deb"), "{deb}");
    let (ok, info) = tool("dpkg-deb", &["--info", &deb]).expect("dpkg-deb");
    assert!(ok, "{info}");
    for field in [
        " Package: cutoff\n",
        " Architecture: amd64\n",
        " Depends: libc6 (>= 2.",
        "), libgcc-s1 (>= ",
    ] {
        assert!(info.contains(field), "{field:?} not in\n{info}");
    }
    let (ok, files) = tool("dpkg-deb", &["--contents", &deb]).expect("dpkg-deb");
    assert!(ok, "{files}");
    let readme = std::fs::read_to_string(root().join("deploy/debian/README.md")).expect("README");
    for path in [
        "/usr/bin/cutoff",
        "/lib/systemd/system/cutoff.service",
        "/etc/cutoff/cutoff.yaml",
        "/etc/logrotate.d/cutoff",
        "/usr/share/doc/cutoff/configuration.md",
        "/usr/share/doc/cutoff/examples/home.yaml",
    ] {
        assert!(
            files.contains(&format!(".{path}\n")),
            "{path} not in\n{files}"
        );
        assert!(
            readme.contains(path),
            "deploy/debian/README.md omits {path}"
        );
    }
    let depends = info
        .lines()
        .find(|l| l.starts_with(" Depends:"))
        .expect("Depends");
    assert!(
        readme.contains(depends.trim()),
        "deploy/debian/README.md does not quote `{}`",
        depends.trim()
    );
}

/// Where systemd is not PID 1 (a container, WSL) the postinst enables the
/// unit for later, starts nothing, and says how to run cutoff instead.
#[test]
fn postinst_without_systemd_says_the_service_was_not_started() {
    if !crate::util::needs(
        matches!(tool("unshare", &["--mount", "true"]), Some((true, _))),
        "mount namespaces (`unshare --mount`)",
        "run as root",
    ) {
        return;
    }
    // Stand-ins record every call, so the host's units are never touched;
    // an empty tmpfs over /run hides /run/systemd/system.
    let stubs = tempfile::tempdir().expect("tempdir");
    let calls = stubs.path().join("calls");
    for name in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let p = stubs.path().join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho \"{name} $*\" >> {}\n", calls.display()),
        )
        .expect("stub");
        std::process::Command::new("chmod")
            .args(["755", p.to_str().expect("utf-8")])
            .status()
            .expect("chmod");
    }
    let script = format!(
        "mount -t tmpfs none /run && PATH={}:$PATH sh {} configure",
        stubs.path().display(),
        root().join("deploy/debian/postinst").display()
    );
    let (ok, text) = tool("unshare", &["--mount", "sh", "-c", &script]).expect("unshare");
    assert!(ok, "{text}");
    assert!(text.contains("systemd is not running here"), "{text}");
    assert!(
        text.contains("cutoff serve --config /etc/cutoff/cutoff.yaml"),
        "{text}"
    );
    let calls = std::fs::read_to_string(&calls).expect("calls");
    assert!(
        calls.contains("deb-systemd-helper enable cutoff.service"),
        "{calls}"
    );
    assert!(!calls.contains("deb-systemd-invoke"), "started: {calls}");
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
