//! `cutoff firewall` as an admin runs it: the nftables output under
//! `nft -c -f`, the iptables script under `sh -n` and, through stand-in
//! `iptables` commands, `iptables-restore --test`; the shipped examples in
//! deploy/firewall/ byte for byte. A missing tool (or one that cannot reach
//! netlink here) falls back to a structural check with a note.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use crate::util::{needs, needs_tool, root, run, temp_file, tool};

/// A config with IPv6 prefixes, deny ranges and port 53 on every interface,
/// so every branch of the generator is exercised.
const WIDE: &str = "listen: ['0.0.0.0:53', '[::]:53']\naccess:\n  allow: [127.0.0.0/8, '::1/128', 10.0.0.0/8, 192.168.0.0/16, 'fd00::/8']\n  deny: [10.99.0.0/16]\nlists:\n  kn: {builtin: kaspersky-networks}\n  v6: {prefixes: ['2a03:2480:8000::/48', '2a03:2480:68::/48']}\nrules:\n  - {name: addresses, lists: [kn, v6], action: log}\n";

/// The generator's output, which must succeed.
fn generate(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "cutoff {args:?}:\n{err}");
    out
}

/// Every output to check: the embedded default, the shipped deployment
/// config behind a LAN interface, and [`WIDE`].
fn outputs(format: &str) -> Vec<(String, String)> {
    let (_dir, wide) = temp_file("wide.yaml", WIDE);
    let deploy = root().join("deploy/cutoff.yaml");
    let cases: [(&str, Vec<&str>); 3] = [
        ("default", vec![]),
        (
            "deploy/cutoff.yaml",
            vec![
                "--config",
                deploy.to_str().unwrap(),
                "--lan-interface",
                "eth1",
            ],
        ),
        (
            "wide",
            vec!["--config", wide.to_str().unwrap(), "--port", "5533"],
        ),
    ];
    cases
        .into_iter()
        .map(|(name, extra)| {
            let mut args = vec!["firewall", "--format", format];
            args.extend(extra);
            (name.to_owned(), generate(&args))
        })
        .collect()
}

/// Whether `nft -c` works here at all (installed, and netlink reachable).
fn nft_usable() -> bool {
    let (_dir, probe) = temp_file(
        "probe.nft",
        "table inet cutoff_probe {\n\tchain c {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n",
    );
    if !needs_tool("nft", "apt-get install nftables") {
        return false;
    }
    let (ok, text) = tool("nft", &["-c", "-f", probe.to_str().unwrap()]).expect("nft");
    needs(
        ok,
        "`nft -c` with netlink access",
        &format!("nft -c said: {}", text.trim()),
    )
}

/// Balanced braces, nothing but comments and the table outside it, rules
/// only inside chains, every referenced set declared and every declared
/// set used.
fn check_nft_structure(name: &str, text: &str) {
    // What each open brace opened: table, set, chain or elements.
    let mut open: Vec<&str> = Vec::new();
    let mut declared = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = format!("{name} line {}: {raw}", i + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            assert!(open.pop().is_some(), "unbalanced: {at}");
            continue;
        }
        let rule = ["saddr", "daddr", "dport", "counter", "return"]
            .iter()
            .any(|w| line.split_whitespace().any(|x| x == *w));
        match open.last() {
            None => assert!(
                [
                    "table inet cutoff",
                    "delete table inet cutoff",
                    "table inet cutoff {"
                ]
                .contains(&line),
                "outside the table: {at}"
            ),
            Some(&"table") => assert!(
                line.starts_with("set ") || line.starts_with("chain "),
                "outside any set or chain: {at}"
            ),
            Some(&"chain") => {}
            Some(_) => assert!(!rule, "a rule outside any chain: {at}"),
        }
        if let Some(set) = line.strip_prefix("set ") {
            declared.insert(set.trim_end_matches(" {").to_owned());
        }
        for word in line.split_whitespace() {
            if let Some(set) = word.strip_prefix('@') {
                used.insert(set.to_owned());
            }
        }
        if line.ends_with('{') {
            open.push(line.split_whitespace().next().unwrap_or_default());
        } else {
            assert_eq!(line.matches('{').count(), line.matches('}').count(), "{at}");
        }
    }
    assert!(open.is_empty(), "{name}: unclosed {open:?}");
    assert_eq!(declared, used, "{name}: sets declared and sets used");
    assert!(
        text.contains("chain prerouting {") && text.contains("chain forward {"),
        "{name}"
    );
}

#[test]
fn nftables_output_passes_nft_check() {
    let nft = nft_usable();
    for (name, text) in outputs("nftables") {
        check_nft_structure(&name, &text);
        if nft {
            let (_dir, path) = temp_file("cutoff.nft", &text);
            let (ok, out) = tool("nft", &["-c", "-f", path.to_str().unwrap()]).unwrap();
            assert!(ok, "nft -c -f ({name}):\n{out}\n{text}");
        }
    }
}

/// Stand-ins for `iptables` and `ip6tables` that record their arguments,
/// one per line, a blank line after each call.
const SHIM: &str = "#!/bin/sh\n{ echo \"${0##*/}\"; for a in \"$@\"; do echo \"$a\"; done; echo; } >> \"$CUTOFF_SHIM_LOG\"\n";

/// Runs the script with the stand-ins first on PATH; returns the calls.
fn calls(script: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for t in ["iptables", "ip6tables"] {
        let p = dir.path().join(t);
        std::fs::write(&p, SHIM).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = dir.path().join("cutoff.sh");
    std::fs::write(&file, script).unwrap();
    let log = dir.path().join("calls");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(&file)
        .args(extra)
        .env("PATH", path)
        .env("CUTOFF_SHIM_LOG", &log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    text.split("\n\n")
        .filter(|r| !r.is_empty())
        .map(|r| r.lines().map(str::to_owned).collect())
        .collect()
}

/// The calls of one command as `iptables-restore` input: the chains it
/// creates, then its -A and -I rules as appends, per table.
fn restore_input(calls: &[Vec<String>], program: &str) -> String {
    let mut out = String::new();
    for table in ["nat", "filter"] {
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        for c in calls.iter().filter(|c| c[0] == program) {
            let args = &c[1..];
            let t = args
                .iter()
                .position(|a| a == "-t")
                .map(|i| args[i + 1].as_str());
            if t != Some(table) {
                continue;
            }
            let rest: Vec<&String> = args.iter().skip(2).collect();
            match rest.first().map(|s| s.as_str()) {
                Some("-N") => chains.push(rest[1].clone()),
                Some("-A" | "-I") => {
                    let mut words = vec!["-A".to_owned(), rest[1].clone()];
                    let skip = if rest.get(2).is_some_and(|w| w.parse::<u32>().is_ok()) {
                        3
                    } else {
                        2
                    };
                    words.extend(rest[skip..].iter().map(|w| {
                        if w.contains(' ') {
                            format!("\"{w}\"")
                        } else {
                            (*w).clone()
                        }
                    }));
                    rules.push(words.join(" "));
                }
                _ => {}
            }
        }
        if chains.is_empty() && rules.is_empty() {
            continue;
        }
        out.push_str(&format!("*{table}\n"));
        for c in chains {
            out.push_str(&format!(":{c} - [0:0]\n"));
        }
        for r in rules {
            out.push_str(&format!("{r}\n"));
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// `PROGRAM --test` with `input` on stdin; `None` when not installed.
fn restore_test(program: &str, input: &str) -> Option<(bool, String)> {
    let mut child = Command::new(program)
        .arg("--test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn iptables_script_passes_sh_and_iptables_restore() {
    for (name, text) in outputs("iptables") {
        let (_dir, path) = temp_file("cutoff.sh", &text);
        let (ok, out) = tool("sh", &["-n", path.to_str().unwrap()]).expect("sh");
        assert!(ok, "sh -n ({name}):\n{out}");
        // Run for real against the stand-ins: every chain a rule is added to
        // or jumps to was created first (or is built in).
        let made = calls(&text, &[]);
        for program in ["iptables", "ip6tables"] {
            let input = restore_input(&made, program);
            let created: BTreeSet<&str> = input
                .lines()
                .filter_map(|l| l.strip_prefix(':'))
                .filter_map(|l| l.split(' ').next())
                .collect();
            for rule in input.lines().filter(|l| l.starts_with("-A ")) {
                let words: Vec<&str> = rule.split(' ').collect();
                let builtin = ["PREROUTING", "FORWARD", "OUTPUT"].contains(&words[1]);
                assert!(builtin || created.contains(words[1]), "{name}: {rule}");
                if let Some(target) = words.iter().skip_while(|w| **w != "-j").nth(1) {
                    assert!(
                        !target.starts_with("CUTOFF") || created.contains(target),
                        "{name}: {rule}"
                    );
                }
            }
            if program == "iptables" {
                assert!(input.contains("-j REDIRECT --to-ports"), "{name}: {input}");
            }
            if input.is_empty() {
                continue;
            }
            let restore = format!("{program}-restore");
            if !needs_tool(&restore, "apt-get install iptables") {
                continue;
            }
            let (ok, err) = restore_test(&restore, &input).expect("restore");
            assert!(ok, "{restore} --test ({name}):\n{err}\n{input}");
        }
        // `remove` takes everything out and adds nothing.
        let removal = calls(&text, &["remove"]);
        assert!(
            removal
                .iter()
                .all(|c| !c.contains(&"-A".to_owned()) && !c.contains(&"-I".to_owned()))
        );
    }
}

#[test]
fn shipped_firewall_examples_match_the_generator() {
    for (format, file) in [("nftables", "cutoff.nft"), ("iptables", "cutoff.sh")] {
        let path = root().join("deploy/firewall").join(file);
        // From the packaged config (listens on every interface), the one the
        // rules are meant to sit next to.
        // A relative path, so the header reads the same on every checkout.
        let out = crate::util::bin()
            .current_dir(root())
            .args([
                "firewall",
                "--format",
                format,
                "--config",
                "deploy/cutoff.yaml",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let generated = String::from_utf8(out.stdout).unwrap();
        if std::env::var_os("CUTOFF_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "deploy/firewall/{file} differs from `cutoff firewall --format {format}`: regenerate it (CUTOFF_BLESS=1 cargo test --test tests firewall)"
        );
    }
}

#[test]
fn an_invalid_config_exits_1_listing_its_problems() {
    let (_dir, path) = temp_file(
        "bad.yaml",
        "listen: [nope]\naccess:\n  allow: [10.0.0.0/33]\n",
    );
    let (code, out, err) = run(&[
        "firewall",
        "--format",
        "nftables",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("line 1: listen[0]") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn a_loopback_only_config_is_refused_and_a_loopback_listener_warned_about() {
    let (_dir, path) = temp_file("lo.yaml", "access:\n  allow: [127.0.0.0/8]\n");
    let (code, _, err) = run(&[
        "firewall",
        "--format",
        "iptables",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no client outside loopback"), "{err}");
    let (code, out, err) = run(&["firewall", "--format", "nftables"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("warning: cutoff listens on no non-loopback address at port 5533"),
        "{err}"
    );
    assert!(out.contains("# WARNING: cutoff listens"));
}

/// Applies both outputs twice and removes them, in a network namespace of
/// its own (the host's rules are never touched). Skipped where namespaces
/// cannot be created.
#[test]
fn rules_apply_twice_and_come_out_again_in_a_private_network_namespace() {
    if !needs(
        matches!(tool("unshare", &["--net", "true"]), Some((true, _))),
        "network namespaces (`unshare --net`)",
        "run as root, util-linux",
    ) {
        return;
    }
    let probe = "nft list ruleset && iptables -t nat -S && ip6tables -t nat -S";
    if !needs(
        matches!(
            tool("unshare", &["--net", "sh", "-c", probe]),
            Some((true, _))
        ),
        "nft and iptables inside a network namespace",
        "apt-get install nftables iptables",
    ) {
        return;
    }
    for ((name, nft), (_, sh)) in outputs("nftables").into_iter().zip(outputs("iptables")) {
        let (_d1, nft) = temp_file("cutoff.nft", &nft);
        let (_d2, sh) = temp_file("cutoff.sh", &sh);
        let (nft, sh) = (nft.display(), sh.display());
        let script = format!(
            "set -e\nnft -f {nft}\nnft -f {nft}\nnft list table inet cutoff >/dev/null\n\
             nft delete table inet cutoff\nsh {sh}\nsh {sh}\n\
             [ \"$(iptables -t nat -S PREROUTING | grep -c CUTOFF-NAT)\" = 1 ]\n\
             [ \"$(iptables -S FORWARD | grep -c CUTOFF-FWD)\" = 1 ]\n\
             sh {sh} remove\n\
             if iptables-save | grep CUTOFF || ip6tables-save | grep CUTOFF; then exit 1; fi\n"
        );
        let (ok, out) = tool("unshare", &["--net", "sh", "-c", &script]).unwrap();
        assert!(ok, "{name}:\n{out}");
    }
}
