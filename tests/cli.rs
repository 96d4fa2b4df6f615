//! `cutoff check` and `cutoff explain`, run as an admin would.

use crate::util::{root, run, temp_file};

#[test]
fn check_accepts_the_embedded_default_and_summarises_it() {
    let (code, out, err) = run(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config embedded default: OK"), "{out}");
    assert!(out.contains("kaspersky-cutoff"), "{out}");
    assert!(out.contains("198 active, 10 disabled"), "{out}");
    assert!(out.contains("now: block (active)"), "{out}");
}

#[test]
fn check_lists_every_problem_with_its_line_and_exits_1() {
    let (_dir, path) = temp_file(
        "bad.yaml",
        "listen: [nope]\nlisen: x\nnetworks:\n  a: [10.1.0.0/16, 10.2.0.0/33]\n  b: [10.1.0.0/16]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - name: r\n    lists: [k, missing]\n    networks: [nowhere]\n    action: blok\n    from: 2024-09-29\n",
    );
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "line 1: listen[0]",
        "line 2: lisen: unknown key",
        "did you mean `listen`",
        "line 4: networks.a[1]: `10.2.0.0/33` is not a CIDR",
        "line 5: networks.b[0]: 10.1.0.0/16 is already in network `a`",
        "line 10: rules[0].lists[1]: no list named `missing`",
        "line 11: rules[0].networks[0]: no network named `nowhere`",
        "line 12: rules[0].action: `blok` is not an action",
        "line 13: rules[0].from: `2024-09-29` is not an instant",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("8 problems"), "{err}");
}

#[test]
fn check_reports_a_yaml_syntax_error_with_its_line() {
    let (_dir, path) = temp_file("broken.yaml", "rules:\n  - name: x\n    lists: [k\n");
    let (code, _, err) = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not valid YAML"), "{err}");
    assert!(err.contains("line "), "{err}");
}

#[test]
fn check_names_a_missing_config_file() {
    let (code, _, err) = run(&["check", "--config", "/nonexistent/cutoff.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/cutoff.yaml"), "{err}");
}

#[test]
fn explain_json_has_the_documented_fields() {
    let (code, out, err) = run(&[
        "explain",
        "--client",
        "10.1.2.3",
        "--at",
        "2024-09-29T00:00:00-04:00",
        "--json",
        "S05.UPD.kaspersky.com.",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["action"], "block");
    assert_eq!(v["network"], "default");
    assert_eq!(v["rule"], "kaspersky-cutoff");
    assert_eq!(v["list"], "kaspersky");
    assert_eq!(v["category"], "update");
    assert_eq!(v["entry"], "s05.upd.kaspersky.com");
    assert_eq!(v["phase"], "active");
    assert_eq!(v["name"], "s05.upd.kaspersky.com");
    assert!(v["sources"].as_array().is_some_and(|s| !s.is_empty()));
}

#[test]
fn explain_one_nanosecond_before_the_cutoff_logs() {
    let (_, out, _) = run(&[
        "explain",
        "--client",
        "192.168.1.9",
        "--at",
        "2024-09-29T03:59:59.999999999Z",
        "--json",
        "dnl-01.geo.kaspersky.com",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["action"].as_str(), v["phase"].as_str()),
        (Some("log"), Some("before"))
    );
}

#[test]
fn explain_refuses_a_public_client() {
    let (code, out, _) = run(&["explain", "--client", "8.8.8.8", "--json", "example.com"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["action"], "refuse");
    assert!(v["network"].is_null());
}

#[test]
fn explain_uses_a_config_file_and_its_networks() {
    let office = root().join("docs/examples/office.yaml");
    let (code, out, err) = run(&[
        "explain",
        "--config",
        office.to_str().unwrap(),
        "--client",
        "10.20.1.1",
        "--json",
        "s01.upd.kaspersky.com",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["network"], "lab");
    assert_eq!(v["action"], "log");
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in ["check", "explain"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Examples:"), "{cmd}: {out}");
        assert!(out.contains(&format!("cutoff {cmd}")), "{cmd}: {out}");
    }
}

/// Issue 15, point 1: `report --since 5000000d` panicked in the duration
/// arithmetic; now clap reports the value as refused (exit 2) with what
/// is accepted.
#[test]
fn report_refuses_a_since_out_of_range_with_what_is_accepted() {
    let (_dir, log) = temp_file("q.jsonl", "");
    for since in ["5000000d", "9223372036854775807s", "2024-09-31"] {
        let (code, _out, err) = run(&["report", "--log", log.to_str().unwrap(), "--since", since]);
        assert_eq!(code, 2, "{since}: {err}");
        assert!(err.contains(since), "{err}");
        assert!(
            err.contains("an RFC 3339 instant (2024-09-29T04:00:00Z) or a date"),
            "{err}"
        );
    }
    let (code, out, err) = run(&[
        "report",
        "--log",
        log.to_str().unwrap(),
        "--since",
        "2024-09-29",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no client asked"), "{out}");
}

#[test]
fn check_and_explain_use_the_installed_config_when_it_exists_and_say_so() {
    let (_dir, installed) = temp_file(
        "cutoff.yaml",
        "lists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: mine, lists: [k], action: block}\n",
    );
    let installed = installed.to_str().unwrap();
    let (code, out, err) = run(&["check", "--installed-config", installed]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with(&format!(
            "note: using the installed config {installed} (--config PATH for another file, --default for the embedded policy)\n"
        )),
        "{err}"
    );
    assert!(out.starts_with(&format!("config {installed}: OK")), "{out}");
    let (code, out, err) = run(&[
        "explain",
        "--installed-config",
        installed,
        "--client",
        "127.0.0.1",
        "--at",
        "2024-01-01T00:00:00Z",
        "s05.upd.kaspersky.com",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with("note: using the installed config "),
        "{err}"
    );
    assert!(out.contains("rule     mine (phase always)"), "{out}");
}

#[test]
fn default_asks_for_the_embedded_policy_even_where_a_config_is_installed() {
    let (_dir, installed) = temp_file("cutoff.yaml", "listen: [\"127.0.0.1:53\"]\n");
    let installed = installed.to_str().unwrap();
    let (code, out, err) = run(&["check", "--default", "--installed-config", installed]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("config embedded default: OK"), "{out}");
    assert!(!err.contains("installed config"), "{err}");
    let (code, _, err) = run(&["check", "--default", "--config", installed]);
    assert_eq!(code, 2, "--default and --config conflict: {err}");
    let (code, out, err) = run(&["check", "--installed-config", "/nonexistent/cutoff.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("config embedded default: OK"), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn serve_help_names_every_upstream_scheme() {
    let (code, out, err) = run(&["serve", "--help"]);
    assert_eq!(code, 0, "{err}");
    for scheme in ["udp://", "tcp://", "tls://", "https://", "system"] {
        assert!(
            out.contains(scheme),
            "`serve --help` omits {scheme}:\n{out}"
        );
    }
}

#[test]
fn yaml_syntax_errors_are_reported_at_the_line_of_the_mistake() {
    let cases = [
        (
            "listen: [\"127.0.0.1:53\"\nupstreams: [9.9.9.9]\n",
            "line 1: not valid YAML: `[` is not closed",
        ),
        (
            "listen: [\"127.0.0.1:53\"]\nupstreams:\n  - 9.9.9.9\n\t- 1.1.1.1\n",
            "line 4: not valid YAML: ",
        ),
        (
            "listen: [[::]:53]\n",
            "line 1: listen[0]: expected a string, found a mapping; an IPv6 address in brackets must be quoted",
        ),
    ];
    for (yaml, expected) in cases {
        let (_dir, path) = temp_file("c.yaml", yaml);
        let (code, _, err) = run(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(expected),
            "{yaml:?}: expected {expected:?} in\n{err}"
        );
    }
}
