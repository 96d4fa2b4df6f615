//! The config is documented three times (field docs in `config/raw.rs`,
//! docs/configuration.md, the commented examples); these tests keep them in
//! step with the schema and make sure no shipped config can rot.

use crate::util::root;

#[test]
fn every_config_key_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    let missing: Vec<String> = cutoff::config::known_keys()
        .into_iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn every_example_config_is_valid_without_warnings() {
    let dir = root().join("docs/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        match cutoff::config::load(&path) {
            Ok(c) => assert!(
                c.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                c.warnings
            ),
            Err(e) => panic!("{}: {e}: {e:?}", path.display()),
        }
    }
    assert!(seen >= 3, "expected the home, office and SOC examples");
}

#[test]
fn embedded_default_is_valid_without_warnings() {
    let c = cutoff::config::load_default().expect("default");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Five written rules, and one each for the two bypass switches that are on.
    assert_eq!(c.rules.len(), 7);
}

#[test]
fn configuration_doc_shows_the_embedded_default_verbatim() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).expect("doc");
    assert!(
        doc.contains(cutoff::config::DEFAULT_YAML),
        "docs/configuration.md section 4 must carry resolver/config/default.yaml as it is"
    );
}

/// Every `cutoff_*` metric name in the dashboard, the alert rules and the
/// docs is one the binary exports (histograms with their suffixes).
#[test]
fn dashboards_rules_and_docs_use_only_exported_metrics() {
    let mut known: Vec<String> = Vec::new();
    for (name, kind, _) in cutoff::metrics::FAMILIES {
        known.push((*name).to_owned());
        if *kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                known.push(format!("{name}{s}"));
            }
        }
    }
    let files = [
        "deploy/grafana/cutoff-dashboard.json",
        "deploy/prometheus/cutoff-rules.yaml",
        "docs/metrics.md",
        "docs/soc-guide.md",
    ];
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        let mut rest = text.as_str();
        while let Some(i) = rest.find("cutoff_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            // Prefixes in prose ("cutoff_*", "cutoff_querylog_") are not names.
            if !name.ends_with('_') {
                assert!(
                    known.iter().any(|k| k == name),
                    "{f} uses `{name}`, which cutoff does not export"
                );
                checked += 1;
            }
            rest = &tail[end..];
        }
    }
    assert!(
        checked > 50,
        "expected many metric references, found {checked}"
    );
}

/// Replaces what differs from run to run: instants (`2026-11-26T18:11:36.86Z`)
/// by `<time>` and config versions (16 hex digits) by `<version>`.
fn normalise(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let digits = |from: usize, n: usize| {
            b.get(from..from + n)
                .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
        };
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary
            && digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && b.get(i + 10) == Some(&b'T')
        {
            let mut j = i + 11;
            while j < b.len() && (b[j].is_ascii_digit() || b":.Z+-".contains(&b[j])) {
                j += 1;
            }
            out.push_str("<time>");
            i = j;
            continue;
        }
        let hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
        if boundary && b.len() >= i + 16 && b[i..i + 16].iter().all(hex) {
            let end = i + 16;
            if end == b.len() || !b[end].is_ascii_alphanumeric() {
                out.push_str("<version>");
                i = end;
                continue;
            }
        }
        let ch = text[i..].chars().next().expect("char");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `base` YAML with each top-level key of `keys` replaced (the key's line and
/// everything indented under it), and keys it does not have appended.
fn replace_top_level_keys(base: &str, keys: &str) -> String {
    fn sections(text: &str) -> Vec<(Option<String>, String)> {
        let mut out: Vec<(Option<String>, String)> = vec![(None, String::new())];
        for line in text.lines() {
            let top = line
                .split_once(':')
                .map(|(k, _)| k)
                .filter(|k| !k.is_empty() && !line.starts_with([' ', '#', '-']));
            if let Some(k) = top {
                out.push((Some(k.to_owned()), String::new()));
            }
            if let Some((_, body)) = out.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        out
    }
    let new = sections(keys);
    let mut out = String::new();
    for (key, body) in sections(base) {
        match new.iter().find(|(k, _)| k.is_some() && *k == key) {
            Some((_, replacement)) => out.push_str(replacement),
            None => out.push_str(&body),
        }
    }
    let old = sections(base);
    for (key, body) in &new {
        if key.is_some() && !old.iter().any(|(k, _)| k == key) {
            out.push_str(body);
        }
    }
    out
}

/// One `$ cutoff …` command quoted in a doc, with the output shown under it.
struct Quoted {
    doc: String,
    /// The doc's files as they stand at this command.
    files: Vec<(String, String)>,
    command: String,
    output: String,
    status: Option<i32>,
}

/// Every `$ cutoff check` and `$ cutoff explain` in fenced blocks of `doc`,
/// and the files the doc provides for them: a fenced block right after a
/// `<!-- file: NAME -->` line is the content of NAME.
fn quoted(doc: &str, text: &str) -> Vec<Quoted> {
    let mut commands: Vec<Quoted> = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().peekable();
    let mut file_name: Option<String> = None;
    let mut once: Option<Vec<(String, String)>> = None;
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("<!-- file: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            file_name = Some(name.to_owned());
            continue;
        }
        // `<!-- edit: NAME: OLD => NEW -->`: for the next block only, the
        // first OLD in NAME becomes NEW (a mistake shown once).
        if let Some(edit) = line
            .strip_prefix("<!-- edit: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            let (name, change) = edit.split_once(": ").expect("edit: NAME: OLD => NEW");
            let (old, new) = change.split_once(" => ").expect("edit: NAME: OLD => NEW");
            let mut edited = files.clone();
            let file = edited
                .iter_mut()
                .rev()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{doc}: edit of unknown file {name}"));
            assert!(file.1.contains(old), "{doc}: no `{old}` in {name}");
            file.1 = file.1.replacen(old, new, 1);
            once = Some(edited);
            continue;
        }
        if !line.starts_with("```") {
            continue;
        }
        let mut block = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            block.push(l);
        }
        if let Some(marker) = file_name.take() {
            let block = block.join("\n") + "\n";
            // `NAME based on BASE`: BASE with this block's top-level keys
            // replaced or added (BASE: a repository file or an earlier NAME).
            let (name, content) = match marker.split_once(" based on ") {
                Some((name, base)) => {
                    let base = files
                        .iter()
                        .rev()
                        .find(|(n, _)| n == base)
                        .map(|(_, c)| c.clone())
                        .unwrap_or_else(|| {
                            std::fs::read_to_string(root().join(base))
                                .unwrap_or_else(|e| panic!("{doc}: {base}: {e}"))
                        });
                    (name.to_owned(), replace_top_level_keys(&base, &block))
                }
                None => (marker, block),
            };
            files.push((name, content));
            continue;
        }
        let now = once.take().unwrap_or_else(|| files.clone());
        let mut current: Option<Quoted> = None;
        for l in block {
            if let Some(cmd) = l.strip_prefix("$ ") {
                commands.extend(current.take());
                if cmd == "echo $?" {
                    continue;
                }
                if cmd.starts_with("cutoff check") || cmd.starts_with("cutoff explain") {
                    current = Some(Quoted {
                        doc: doc.to_owned(),
                        files: now.clone(),
                        command: cmd.to_owned(),
                        output: String::new(),
                        status: None,
                    });
                }
            } else if let Some(q) = current.as_mut() {
                q.output.push_str(l);
                q.output.push('\n');
            } else if let (Some(q), Ok(code)) = (commands.last_mut(), l.parse::<i32>()) {
                // The line under `$ echo $?`.
                q.status = Some(code);
            }
        }
        commands.extend(current);
    }
    commands
}

/// Docs that quote `check` and `explain` output quote what the binary
/// prints today, errors, warnings and summaries alike (instants and config
/// versions aside). A quoted command whose files are neither in the
/// repository nor given in the doc fails here, so none is skipped silently.
#[test]
fn program_output_quoted_in_the_docs_is_what_the_binary_prints() {
    let docs = [
        "docs/configuration.md",
        "docs/soc-guide.md",
        "docs/guide-network-admin.md",
        "docs/raspberry-pi.md",
    ];
    let mut checked = 0;
    let mut wrong = Vec::new();
    // CUTOFF_BLESS_DOCS=1 writes what the binary prints into the docs.
    let bless = std::env::var_os("CUTOFF_BLESS_DOCS").is_some();
    for doc in docs {
        let text = std::fs::read_to_string(root().join(doc)).expect("doc");
        let mut blessed = text.clone();
        for q in quoted(doc, &text) {
            // Each doc file at its path under a temp dir (absolute ones too).
            let dir = tempfile::tempdir().expect("tempdir");
            let local = |name: &str| dir.path().join(name.trim_start_matches('/'));
            for (name, content) in &q.files {
                let path = local(name);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, content).expect("write");
            }
            let files = &q.files;
            let mut args: Vec<String> = Vec::new();
            for a in q.command.split_whitespace().skip(1) {
                args.push(
                    match files.iter().find(|(n, _)| n == a && a.starts_with('/')) {
                        Some((n, _)) => local(n).display().to_string(),
                        None => a.to_owned(),
                    },
                );
            }
            // The doc's relative files from the temp dir, else the repository's;
            // never the host's installed config.
            let cwd = if files.iter().any(|(n, _)| args.contains(n)) {
                dir.path().to_owned()
            } else {
                root()
            };
            args.splice(
                1..1,
                ["--installed-config".to_owned(), "/nonexistent".to_owned()],
            );
            let out = crate::util::bin()
                .args(&args)
                .current_dir(&cwd)
                .output()
                .expect("run cutoff");
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let printed = printed.replace(&format!("{}/", dir.path().display()), "/");
            let (got, mut want) = (normalise(&printed), normalise(&q.output));
            // A last line `  ...` in the doc: the rest of the output is left out.
            let mut got_cmp = got.trim_end().to_owned();
            if let Some(head) = want.trim_end().strip_suffix("  ...") {
                want = head.to_owned();
                got_cmp = got_cmp.chars().take(want.chars().count()).collect();
            }
            if got_cmp.trim_end() != want.trim_end() && bless {
                let elided = q.output.trim_end().ends_with("  ...");
                let mut new: String = if elided {
                    let keep = q.output.lines().count() - 1;
                    printed
                        .lines()
                        .take(keep)
                        .map(|l| format!("{l}\n"))
                        .collect()
                } else {
                    printed.trim_end().to_owned() + "\n"
                };
                if elided {
                    new.push_str("  ...\n");
                }
                let old = format!("$ {}\n{}", q.command, q.output);
                blessed = blessed.replacen(&old, &format!("$ {}\n{new}", q.command), 1);
            } else if got_cmp.trim_end() != want.trim_end() {
                wrong.push(format!(
                    "{}: `$ {}` prints\n{}\n-- but the doc says --\n{}",
                    q.doc, q.command, got, want
                ));
            }
            if q.status.is_some_and(|code| out.status.code() != Some(code)) {
                wrong.push(format!("{}: `$ {}`: exit status", q.doc, q.command));
            }
            checked += 1;
        }
        if bless && blessed != text {
            std::fs::write(root().join(doc), blessed).expect("bless");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(checked >= 15, "only {checked} quoted commands found");
}

/// Every warning text in the table of docs/configuration.md section 6 is
/// one the validator emits: each literal piece between the placeholders
/// (NAME, CIDR, …) appears in the config sources.
#[test]
fn warning_texts_in_the_configuration_doc_are_the_validators() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).expect("doc");
    let mut sources = String::new();
    for entry in std::fs::read_dir(root().join("resolver/config")).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(path).expect("source"));
        }
    }
    let table = doc
        .split_once("| Warning | Key path | Meaning |")
        .map(|(_, rest)| rest.split("\n\n").next().unwrap_or_default())
        .expect("the warnings table");
    let mut rows = 0;
    for row in table.lines().skip(2) {
        let cell = row.split(" | ").next().unwrap_or_default();
        let text = cell.trim_start_matches("| ").trim_matches('`').trim();
        let placeholders = [
            "NAME", "CIDR", "NET", "FILE", "LINE", "REASON", "CATEGORY", "N ", "; ...",
        ];
        let mut pieces = vec![text.to_owned()];
        for p in placeholders {
            pieces = pieces
                .iter()
                .flat_map(|s| s.split(p).map(str::to_owned).collect::<Vec<_>>())
                .collect();
        }
        for piece in pieces.iter().map(|p| p.trim()).filter(|p| p.len() >= 4) {
            assert!(
                sources.contains(piece),
                "docs/configuration.md warning `{text}`: `{piece}` is not in resolver/config/"
            );
        }
        rows += 1;
    }
    assert!(rows >= 8, "only {rows} warnings in the table");
}
