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
