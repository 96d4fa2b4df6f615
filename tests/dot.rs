//! DNS over TLS listeners (`listen_tls`, issue 13): kdig and a rustls
//! client over real TLS on loopback, the same policy as plain DNS, the
//! handshake timeout, and certificate pairs `cutoff check` refuses.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fakeup::Fakeup;
use crate::harness::{ede, parse_metrics, query, serve, tcp, value};
use crate::util::{needs_tool, run, temp_file};

/// Blocks the Kaspersky update names on every network; DoT on port 0.
const CONFIG: &str = "upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
listen_tls: [\"127.0.0.1:0\"]
tls:
  certificate: cert.pem
  key: key.pem
  handshake_timeout: 300ms
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
";

/// A self-signed certificate for `dns.test` and 127.0.0.1, written as
/// cert.pem and key.pem into `dir`; returns the certificate's PEM.
pub(crate) fn write_pair(dir: &Path) -> String {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["dns.test".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert.pem");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key.pem");
    cert.pem()
}

/// The config text with the pair written beside it (absolute paths, as
/// the harness writes the config into a folder of its own).
fn config(dir: &Path) -> (String, String) {
    let pem = write_pair(dir);
    let yaml = CONFIG
        .replace("cert.pem", &dir.join("cert.pem").display().to_string())
        .replace("key.pem", &dir.join("key.pem").display().to_string());
    (yaml, pem)
}

/// A TLS client trusting only `pem`, offering ALPN `dot`.
fn client(pem: &str) -> tokio_rustls::TlsConnector {
    client_alpn(pem, &[b"dot"])
}

/// A TLS client trusting only `pem`, offering `alpn`.
pub(crate) fn client_alpn(pem: &str, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn framed(q: &Message) -> Vec<u8> {
    let bytes = q.to_vec().expect("encode");
    let mut out = u16::try_from(bytes.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&bytes);
    out
}

async fn read_message(s: &mut (impl AsyncReadExt + Unpin)) -> Message {
    let read = async {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s")
        .expect("read");
    Message::from_vec(&buf).expect("decode")
}

/// kdig against 127.0.0.1:`port`, trusting `ca` for `dns.test`.
pub(crate) fn kdig(port: u16, ca: &Path, args: &[&str]) -> String {
    let out = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=3", "+retry=0"])
        .arg(format!("+tls-ca={}", ca.display()))
        .arg("+tls-hostname=dns.test")
        .args(args)
        .output()
        .expect("run kdig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tls_gets_the_blocked_answer_and_the_allowed_name_is_forwarded() {
    if !needs_tool("kdig", "apt-get install knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let port = s.tls[0].port();
    let ca = dir.path().join("cert.pem");
    let blocked = tokio::task::spawn_blocking({
        let ca = ca.clone();
        move || kdig(port, &ca, &["s05.upd.kaspersky.com", "A"])
    })
    .await
    .expect("kdig");
    assert!(blocked.contains("TLS session"), "{blocked}");
    assert!(blocked.contains("EDE: 15 (Blocked)"), "{blocked}");
    assert!(
        up.seen_name("s05.upd.kaspersky.com").is_empty(),
        "a blocked name reached the upstream"
    );
    let allowed = tokio::task::spawn_blocking(move || kdig(port, &ca, &["www.example.com", "A"]))
        .await
        .expect("kdig");
    assert!(allowed.contains("status: NOERROR"), "{allowed}");
    assert_eq!(up.seen_name("www.example.com").len(), 1, "{allowed}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_negotiates_alpn_dot_and_answers_pipelined_queries_counted_and_logged_as_dot() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, pem) = config(dir.path());
    let log = dir.path().join("q.jsonl");
    let yaml = format!(
        "{yaml}query_log: {{path: \"{}\", events: all}}\n",
        log.display()
    );
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let stream = tokio::net::TcpStream::connect(s.tls[0])
        .await
        .expect("connect");
    let name = ServerName::try_from("dns.test").expect("name");
    let mut tls = client(&pem).connect(name, stream).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"dot"[..]));
    let mut both = framed(&query("s05.upd.kaspersky.com.", RecordType::A, Some(1232)));
    both.extend(framed(&query("www.example.com.", RecordType::A, None)));
    tls.write_all(&both).await.expect("write");
    let (a, b) = (read_message(&mut tls).await, read_message(&mut tls).await);
    let (blocked, allowed) = if ede(&a).is_some() { (a, b) } else { (b, a) };
    assert_eq!(ede(&blocked).map(|e| e.0), Some(15), "{blocked:?}");
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    assert!(up.seen_name("s05.upd.kaspersky.com").is_empty());
    assert_eq!(up.seen_name("www.example.com").len(), 1);
    let (_, text) = crate::harness::http(s.http, "GET", "/metrics").await;
    let samples = parse_metrics(&text);
    let dot = |action: &str| {
        value(
            &samples,
            "cutoff_queries_total",
            &[
                ("network", "default"),
                ("action", action),
                ("protocol", "dot"),
            ],
        )
    };
    assert_eq!(dot("block"), Some(1.0), "{text}");
    assert_eq!(dot("allow"), Some(1.0), "{text}");
    assert!(
        text.contains("# HELP cutoff_tls_certificate_expiry_timestamp_seconds "),
        "{text}"
    );
    // rcgen's default notAfter: 4096-01-01T00:00:00Z.
    assert_eq!(
        value(
            &samples,
            "cutoff_tls_certificate_expiry_timestamp_seconds",
            &[]
        ),
        Some(67_090_118_400.0),
        "{text}"
    );
    s.state
        .query_log
        .as_ref()
        .expect("log")
        .flush(std::time::Duration::from_secs(5));
    let records = std::fs::read_to_string(&log).expect("log");
    assert_eq!(records.lines().count(), 2, "{records}");
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(r["protocol"], "dot", "{line}");
        assert_eq!(r["client"], "127.0.0.1", "{line}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_closed_and_tcp_still_answers() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let mut silent = tokio::net::TcpStream::connect(s.tls[0])
        .await
        .expect("connect");
    let m = tcp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // Closed by the 300 ms handshake timeout: EOF, long before the 10 s
    // this waits at most.
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed by the handshake timeout");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    s.stop().await;
}

/// The certificate `openssl s_client` is shown on `port`, as PEM.
fn s_client(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-alpn",
            "dot",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a certificate's PEM says between its armour lines.
fn body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_a_rotated_certificate_and_a_bad_pair_keeps_the_old_one() {
    if !needs_tool("openssl", "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, first) = config(dir.path());
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let port = s.tls[0].port();
    let seen = || tokio::task::spawn_blocking(move || body(&s_client(port)));
    assert!(seen().await.expect("openssl").contains(&body(&first)));
    // Rotation, as certbot does it: new files, then SIGHUP (the reload).
    let second = write_pair(dir.path());
    s.state.reload().expect("reload with a good pair");
    let shown = seen().await.expect("openssl");
    assert!(shown.contains(&body(&second)), "{shown}");
    assert!(!shown.contains(&body(&first)));
    // A key that is not the certificate's: the reload fails, counted, and
    // the running pair stays.
    let failures = |text: &str| {
        value(
            &parse_metrics(text),
            "cutoff_config_reloads_total",
            &[("result", "failure")],
        )
    };
    let (_, before) = crate::harness::http(s.http, "GET", "/metrics").await;
    write_pair(dir.path());
    let other = KeyPair::generate().expect("key");
    std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).expect("key");
    let err = s.state.reload().expect_err("a bad pair is refused");
    assert!(format!("{err:?}").contains("do not form a pair"), "{err:?}");
    let (_, after) = crate::harness::http(s.http, "GET", "/metrics").await;
    assert_eq!(
        failures(&after),
        failures(&before).map(|v| v + 1.0),
        "{after}"
    );
    let shown = seen().await.expect("openssl");
    assert!(shown.contains(&body(&second)), "{shown}");
    s.stop().await;
}

fn check(yaml: &str) -> (i32, String) {
    let (dir, path) = temp_file("cutoff.yaml", yaml);
    let (code, _, err) = run(&["check", "--config", path.to_str().expect("utf8")]);
    drop(dir);
    (code, err)
}

#[test]
fn check_refuses_a_key_that_is_not_the_certificates_with_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    let other = KeyPair::generate().expect("key");
    std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).expect("key");
    let (code, err) = check(&yaml.replace("{upstream}", "127.0.0.1:53"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 5: tls.certificate"), "{err}");
    assert!(err.contains("do not form a pair"), "{err}");
}

#[test]
fn check_warns_about_a_certificate_that_expires_within_14_days() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["dns.test".to_owned()]).expect("params");
    // Midnight UTC three or four days from now.
    let soon = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(4 * 24))
        .date();
    params.not_after = rcgen::date_time_ymd(
        i32::from(soon.year()),
        u8::try_from(soon.month()).expect("month"),
        u8::try_from(soon.day()).expect("day"),
    );
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert.pem");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key.pem");
    let (_d, path) = temp_file("cutoff.yaml", &yaml.replace("{upstream}", "127.0.0.1:53"));
    let (code, out, err) = run(&["check", "--config", path.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("line 5: tls.certificate"), "{all}");
    assert!(all.contains("within 14 days: renew it"), "{all}");
    // A fresh certificate (rcgen's default runs to 4096) gets no warning.
    let (yaml, _) = config(dir.path());
    let (_d, path) = temp_file("cutoff.yaml", &yaml.replace("{upstream}", "127.0.0.1:53"));
    let (code, out, err) = run(&["check", "--config", path.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!format!("{out}{err}").contains("renew it"), "{out}{err}");
}

#[test]
fn check_names_a_missing_key_file_and_a_listener_without_a_pair() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    std::fs::remove_file(dir.path().join("key.pem")).expect("rm");
    let (code, err) = check(&yaml.replace("{upstream}", "127.0.0.1:53"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 6: tls.key"), "{err}");
    let bare = "listen_tls: [\"127.0.0.1:853\"]\nupstreams: [127.0.0.1]\n";
    let (code, err) = check(bare);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 1: listen_tls: `listen_tls` needs `tls.certificate`"),
        "{err}"
    );
    assert!(err.contains("needs `tls.key`"), "{err}");
}

#[test]
fn check_refuses_a_chain_with_the_ca_before_the_server_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path());
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Home CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["dns.test".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key.pem");
    let cert = dir.path().join("cert.pem");
    let checked = |pem: String| {
        std::fs::write(&cert, pem).expect("cert.pem");
        check(&yaml.replace("{upstream}", "127.0.0.1:53"))
    };
    let (code, err) = checked(format!("{}{}", leaf.pem(), ca.as_ref().pem()));
    assert_eq!(code, 0, "{err}");
    let (code, err) = checked(format!("{}{}", ca.as_ref().pem(), leaf.pem()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 5: tls.certificate"), "{err}");
    assert!(
        err.contains("certificate 2 in the file did not issue certificate 1"),
        "{err}"
    );
}
