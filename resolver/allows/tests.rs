use std::net::IpAddr;

use super::*;

const CONFIG: &str = "
networks:
  office: [10.1.0.0/16]
  lab:
    cidrs: [10.2.0.0/16]
    overrides: true
lists:
  k:
    path: k.txt
rules:
  - name: block-k
    lists: [k]
    action: block
http:
  listen: 127.0.0.1:9153
  max_allow: 2h
";

fn config() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.txt"), "kaspersky.com\n").unwrap();
    let c = crate::config::from_str(CONFIG, "test", dir.path()).unwrap();
    (dir, c)
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-01-01T00:00:00Z";

#[test]
fn networks_where_a_rule_blocks_forbid_overrides_unless_the_config_permits_them() {
    let (_d, c) = config();
    let by = |n: &str| c.networks.iter().find(|x| x.name == n).unwrap().overrides;
    assert!(!by("office"));
    assert!(by("lab"));
    assert!(!by("default"));
    let e = permitted(&c, Some("office")).unwrap_err().to_string();
    assert!(
        e.contains("network `office` forbids temporary allows"),
        "{e}"
    );
    assert!(permitted(&c, Some("lab")).is_ok());
    assert!(matches!(
        permitted(&c, Some("nope")),
        Err(AllowError::UnknownNetwork(_))
    ));
}

#[test]
fn an_allow_opens_the_name_and_below_until_it_ends_and_only_where_permitted() {
    let (_d, c) = config();
    let s = Snapshot::new(c.clone());
    let allows = Allows::new(None);
    let now = at(NOW);
    allows
        .add(
            &c,
            "Upd.Kaspersky.com.",
            None,
            Duration::from_secs(1800),
            now,
        )
        .unwrap();
    let lab: IpAddr = "10.2.0.9".parse().unwrap();
    let office: IpAddr = "10.1.0.9".parse().unwrap();
    let opens = |client, name: &str, t| {
        let d = s.decide(client, name.as_bytes(), t);
        allows.opens(&s, &d, name.as_bytes(), t)
    };
    assert!(opens(lab, "upd.kaspersky.com", now));
    assert!(opens(lab, "s1.upd.kaspersky.com", now));
    assert!(!opens(lab, "xupd.kaspersky.com", now));
    assert!(!opens(lab, "kaspersky.com", now));
    assert!(
        !opens(office, "upd.kaspersky.com", now),
        "office forbids it"
    );
    let end = at("2026-01-01T00:30:00Z");
    assert!(opens(
        lab,
        "upd.kaspersky.com",
        end - jiff::SignedDuration::from_secs(1)
    ));
    assert!(!opens(lab, "upd.kaspersky.com", end), "ended on time");
    assert_eq!(allows.expire(end).unwrap(), 0);
}

#[test]
fn an_allow_longer_than_max_allow_or_on_a_forbidding_network_is_refused() {
    let (_d, c) = config();
    let allows = Allows::new(None);
    let now = at(NOW);
    let long = allows.add(
        &c,
        "a.kaspersky.com",
        None,
        Duration::from_secs(3 * 3600),
        now,
    );
    assert_eq!(
        long.unwrap_err().to_string(),
        "`for` must be more than 0 and at most 2h (`http.max_allow`)"
    );
    let office = allows.add(
        &c,
        "a.kaspersky.com",
        Some("office"),
        Duration::from_secs(60),
        now,
    );
    assert!(matches!(office, Err(AllowError::Forbidden(_))));
    assert!(matches!(
        allows.add(&c, "", None, Duration::from_secs(60), now),
        Err(AllowError::NotAName(_))
    ));
    assert!(allows.list(now).is_empty());
}

#[test]
fn allows_are_stored_and_read_back_without_the_expired_ones() {
    let (d, c) = config();
    let now = at(NOW);
    let allows = Allows::open(d.path(), now).unwrap();
    allows
        .add(
            &c,
            "a.kaspersky.com",
            Some("lab"),
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    allows
        .add(&c, "b.kaspersky.com", None, Duration::from_secs(3600), now)
        .unwrap();
    let later = at("2026-01-01T00:05:00Z");
    let again = Allows::open(d.path(), later).unwrap();
    let names: Vec<String> = again.list(later).into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["b.kaspersky.com"]);
    assert_eq!(again.remove("B.kaspersky.com.", None, later).unwrap(), 1);
    assert!(
        Allows::open(d.path(), later)
            .unwrap()
            .list(later)
            .is_empty()
    );
}

#[test]
fn a_corrupt_allows_file_names_its_line_and_nothing_of_it_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let good = r#"{"name":"a.kaspersky.com","network":null,"since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z"}"#;
    std::fs::write(d.path().join(FILE), format!("{good}\n\n{{\"name\": 3}}\n")).unwrap();
    let e = Allows::open(d.path(), at(NOW)).unwrap_err().to_string();
    assert!(e.contains("temporary-allows.jsonl line 3: "), "{e}");
}

#[test]
fn the_allows_in_force_take_at_most_the_documented_memory() {
    assert_eq!(MAX_BYTES, 101_632, "docs/api.md");
}

#[test]
fn writing_overrides_changes_the_config_version_only_when_it_differs_from_the_default() {
    let (dir, c) = config();
    let version = |yaml: &str| {
        crate::config::from_str(yaml, "test", dir.path())
            .unwrap()
            .version
    };
    let plain = CONFIG.replace("    overrides: true\n", "");
    let same = CONFIG.replace("overrides: true", "overrides: false");
    assert_ne!(c.version, version(&plain));
    assert_eq!(version(&same), version(&plain));
}
