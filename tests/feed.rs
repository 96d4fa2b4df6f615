//! The signed feed of the shipped Kaspersky list (issue #10, part 2): a key
//! pair made in the test with the real `minisign` tool, a feed served by
//! the HTTPS list server, and `cutoff lists update` / `cutoff check` as an
//! admin runs them. Newer and signed: used; tampered, wrongly signed or
//! older: refused and the embedded list kept.

use std::path::Path;

use crate::listserver::{Cert, ListServer, Reply};
use crate::util::{needs_tool, run};

const EMBEDDED: &str = include_str!("../blocklists/kaspersky/kaspersky.yaml");

/// A minisign key pair in `dir`: (public key base64, secret key path).
fn keys(dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let (p, s) = (
        dir.join(format!("{name}.pub")),
        dir.join(format!("{name}.key")),
    );
    let ok = std::process::Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&p)
        .arg("-s")
        .arg(&s)
        .output()
        .expect("minisign -G")
        .status
        .success();
    assert!(ok, "minisign -G failed");
    let text = std::fs::read_to_string(&p).expect("pub");
    (text.lines().nth(1).expect("key line").to_owned(), s)
}

/// `text` signed with `key`: the .minisig file's bytes.
fn sign(dir: &Path, key: &Path, text: &str) -> Vec<u8> {
    let file = dir.join("feed.yaml");
    std::fs::write(&file, text).expect("feed");
    let ok = std::process::Command::new("minisign")
        .args(["-S", "-s"])
        .arg(key)
        .arg("-m")
        .arg(&file)
        .output()
        .expect("minisign -S")
        .status
        .success();
    assert!(ok, "minisign -S failed");
    std::fs::read(dir.join("feed.yaml.minisig")).expect("sig")
}

fn version(v: &str) -> String {
    EMBEDDED.replace("version: \"2026.12.01\"", &format!("version: \"{v}\""))
}

struct Feed {
    server: ListServer,
    dir: tempfile::TempDir,
    config: String,
    key: std::path::PathBuf,
}

/// A list server, a key pair and a config whose `kaspersky` list takes
/// the feed at /kaspersky.yaml signed with that key.
async fn feed() -> Feed {
    let server = ListServer::start(Cert::Good).await;
    let dir = tempfile::tempdir().expect("dir");
    let (public, key) = keys(dir.path(), "test");
    std::fs::write(dir.path().join("ca.pem"), &server.ca_pem).expect("ca");
    let config = dir.path().join("cutoff.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams: [127.0.0.1:53]\nstate_dir: {d}\nupstream_ca: {d}/ca.pem\nlists:\n  kaspersky:\n    builtin: kaspersky\n    feed: {url}\n    feed_key: {public}\nrules:\n  - name: k\n    lists: [kaspersky]\n    action: block\n",
            d = dir.path().display(),
            url = server.url("/kaspersky.yaml")
        ),
    )
    .expect("config");
    Feed {
        server,
        config: config.to_str().expect("utf8").to_owned(),
        dir,
        key,
    }
}

impl Feed {
    fn publish(&self, body: &str, sig: Vec<u8>) {
        let reply = |b: Vec<u8>| Reply::Body {
            body: b,
            etag: "\"f\"",
            gzip: false,
        };
        self.server
            .route("/kaspersky.yaml", reply(body.as_bytes().to_vec()));
        self.server.route("/kaspersky.yaml.minisig", reply(sig));
    }

    async fn cutoff(&self, args: &[&str]) -> (i32, String, String) {
        let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        a.extend(["--config".to_owned(), self.config.clone()]);
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            run(&a)
        })
        .await
        .expect("join")
    }

    async fn version_in_use(&self) -> String {
        let (code, out, err) = self.cutoff(&["check"]).await;
        assert_eq!(code, 0, "{out}{err}");
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("kaspersky "))
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned();
        line.split("version ")
            .nth(1)
            .and_then(|v| v.split(':').next())
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned()
    }
}

#[tokio::test]
async fn a_newer_signed_feed_replaces_the_embedded_list() {
    if !needs_tool("minisign", "apt-get install minisign") {
        return;
    }
    let f = feed().await;
    assert_eq!(f.version_in_use().await, "2026.12.01");
    let text = version("2099.01.01");
    f.publish(&text, sign(f.dir.path(), &f.key, &text));
    let (code, out, err) = f.cutoff(&["lists", "update"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("kaspersky: updated"), "{out}");
    assert_eq!(f.version_in_use().await, "2099.01.01");
    // The same version again changes nothing, and is not even sent: the
    // GET is conditional on the stored ETag, and a 304 skips the signature.
    let (code, out, _) = f.cutoff(&["lists", "update"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("kaspersky: unchanged"), "{out}");
    assert_eq!(
        f.server.header("/kaspersky.yaml", "if-none-match"),
        [None, Some("\"f\"".to_owned())]
    );
    assert_eq!(f.server.header("/kaspersky.yaml.minisig", "host").len(), 1);
    // A copy altered on disk is verified again at load and ignored.
    let copy = f.dir.path().join("lists/kaspersky.yaml");
    let mut bytes = std::fs::read(&copy).expect("copy");
    bytes.extend_from_slice(b"# altered\n");
    std::fs::write(&copy, bytes).expect("alter");
    let (_, out, _) = f.cutoff(&["check"]).await;
    assert!(
        out.contains("the stored feed copy is ignored") && out.contains("bad signature"),
        "{out}"
    );
    assert_eq!(f.version_in_use().await, "2026.12.01");
}

#[tokio::test]
async fn a_tampered_body_is_refused_and_the_embedded_list_kept() {
    if !needs_tool("minisign", "apt-get install minisign") {
        return;
    }
    let f = feed().await;
    let text = version("2099.01.01");
    let sig = sign(f.dir.path(), &f.key, &text);
    f.publish(
        &text.replace("kaspersky-labs.com", "kaspersky-1abs.com"),
        sig,
    );
    let (code, out, _) = f.cutoff(&["lists", "update"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("kaspersky: refused, last-good copy kept:")
            && out.contains("bad signature: does not verify"),
        "{out}"
    );
    assert_eq!(f.version_in_use().await, "2026.12.01");
}

#[tokio::test]
async fn a_feed_signed_with_another_key_is_refused() {
    if !needs_tool("minisign", "apt-get install minisign") {
        return;
    }
    let f = feed().await;
    let (_, other) = keys(f.dir.path(), "other");
    let text = version("2099.01.01");
    f.publish(&text, sign(f.dir.path(), &other, &text));
    let (code, out, _) = f.cutoff(&["lists", "update"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad signature"), "{out}");
    assert_eq!(f.version_in_use().await, "2026.12.01");
}

#[tokio::test]
async fn an_older_signed_feed_is_refused() {
    if !needs_tool("minisign", "apt-get install minisign") {
        return;
    }
    let f = feed().await;
    let text = version("2025.01.01");
    f.publish(&text, sign(f.dir.path(), &f.key, &text));
    let (code, out, _) = f.cutoff(&["lists", "update"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("version 2025.01.01 is not newer than 2026.12.01"),
        "{out}"
    );
    assert_eq!(f.version_in_use().await, "2026.12.01");
}

#[test]
fn the_default_config_fetches_nothing() {
    let (code, out, err) = run(&["lists", "update"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "no URL lists in embedded default\n");
}
