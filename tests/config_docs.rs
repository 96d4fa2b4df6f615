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
    assert_eq!(c.rules.len(), 2);
}
