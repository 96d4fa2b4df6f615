//! DNS over HTTPS listeners (`listen_https`, issue 13): kdig and dig over
//! real TLS on loopback (GET and POST), a hyper client over HTTP/2 and
//! HTTP/1.1, the HTTP errors that never reach the pipeline, and a flood of
//! idle connections and handshakes that plain DNS outlives.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

use crate::dot::{client_alpn, kdig, write_pair};
use crate::fakeup::Fakeup;
use crate::harness::{Running, ede, parse_metrics, query, serve, tcp, udp, value};
use crate::util::{needs, needs_tool};

/// Blocks the Kaspersky update names on every network; DoH (and DoT) on
/// port 0, the pair written by [`write_pair`] into `{dir}`.
const CONFIG: &str = "upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
listen_tls: [\"127.0.0.1:0\"]
listen_https: [\"127.0.0.1:0\"]
tls:
  certificate: {dir}/cert.pem
  key: {dir}/key.pem
  handshake_timeout: 300ms
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
";

/// The config text (with `extra` appended) and the certificate's PEM.
pub(crate) fn config(dir: &Path, extra: &str) -> (String, String) {
    let pem = write_pair(dir);
    let yaml = CONFIG.replace("{dir}", &dir.display().to_string()) + extra;
    (yaml, pem)
}

/// A TLS session to `addr` trusting `pem`, offering `alpn`.
async fn session(
    addr: SocketAddr,
    pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("dns.test").expect("name");
    client_alpn(pem, alpn)
        .connect(name, stream)
        .await
        .expect("handshake")
}

/// An HTTP/2 client on a fresh session (ALPN `h2` checked).
pub(crate) async fn h2(
    addr: SocketAddr,
    pem: &str,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tls = session(addr, pem, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// An HTTP/1.1 client on a fresh session (ALPN `http/1.1` checked).
async fn h1(addr: SocketAddr, pem: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tls = session(addr, pem, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    send
}

/// Status, headers and body of a response.
pub(crate) async fn read(
    r: hyper::Result<Response<hyper::body::Incoming>>,
) -> (StatusCode, Response<Bytes>) {
    let r = r.expect("response");
    let status = r.status();
    let (parts, body) = r.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("a body within 10 s")
        .expect("body")
        .to_bytes();
    (status, Response::from_parts(parts, bytes))
}

pub(crate) fn post(path: &str, content_type: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("https://dns.test{path}"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

fn get(path_and_query: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://dns.test{path_and_query}"))
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn get_query(m: &Message) -> Request<Full<Bytes>> {
    let dns = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.to_vec().expect("encode"));
    get(&format!("/dns-query?dns={dns}"))
}

pub(crate) fn wire(m: &Message) -> Vec<u8> {
    m.to_vec().expect("encode")
}

async fn metrics(s: &Running) -> Vec<crate::harness::Sample> {
    let (_, text) = crate::harness::http(s.http, "GET", "/metrics").await;
    parse_metrics(&text)
}

fn doh_queries(samples: &[crate::harness::Sample], action: &str) -> Option<f64> {
    value(
        samples,
        "cutoff_queries_total",
        &[
            ("network", "default"),
            ("action", action),
            ("protocol", "doh"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_https_post_and_get_gets_the_blocked_answer_and_the_allowed_name_is_forwarded() {
    if !needs_tool("kdig", "apt-get install knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path(), "");
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let port = s.https[0].port();
    let ca = dir.path().join("cert.pem");
    for (method, session) in [("+https", "(HTTP/2-POST)"), ("+https-get", "(HTTP/2-GET)")] {
        let blocked = tokio::task::spawn_blocking({
            let ca = ca.clone();
            move || kdig(port, &ca, &[method, "s05.upd.kaspersky.com", "A"])
        })
        .await
        .expect("kdig");
        assert!(blocked.contains(session), "{blocked}");
        assert!(blocked.contains("(status: 200)"), "{blocked}");
        assert!(blocked.contains("EDE: 15 (Blocked)"), "{blocked}");
        assert!(
            up.seen_name("s05.upd.kaspersky.com").is_empty(),
            "a blocked name reached the upstream"
        );
    }
    let ca2 = ca.clone();
    let allowed =
        tokio::task::spawn_blocking(move || kdig(port, &ca2, &["+https", "www.example.com", "A"]))
            .await
            .expect("kdig");
    assert!(allowed.contains("status: NOERROR"), "{allowed}");
    assert_eq!(up.seen_name("www.example.com").len(), 1, "{allowed}");
    // kdig's GET for a name not asked before: forwarded too.
    let got = tokio::task::spawn_blocking(move || {
        kdig(port, &ca, &["+https-get", "example.com", "AAAA"])
    })
    .await
    .expect("kdig");
    assert!(got.contains("status: NOERROR"), "{got}");
    assert_eq!(up.seen_name("example.com").len(), 1, "{got}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_over_https_gets_the_blocked_answer_when_the_installed_dig_speaks_doh() {
    if !needs_tool("dig", "apt-get install bind9-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, _) = config(dir.path(), "");
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let port = s.https[0].port().to_string();
    let ca = format!("+tls-ca={}", dir.path().join("cert.pem").display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("dig")
            .args(["@127.0.0.1", "-p", &port, "+https", &ca])
            .args(["+tls-hostname=dns.test", "+time=3", "+tries=1"])
            .args(["s05.upd.kaspersky.com", "A"])
            .output()
            .expect("run dig")
    })
    .await
    .expect("dig");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("Invalid option") || text.contains("not supported") {
        // A dig built without DoH: visibly skipped (a failure under CI=true).
        needs(false, "a dig with +https", "bind9-dnsutils 9.18 or later");
        s.stop().await;
        return;
    }
    assert!(text.contains("EDE: 15 (Blocked)"), "{text}");
    assert!(up.seen_name("s05.upd.kaspersky.com").is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_over_http2_and_http1_answers_with_max_age_counted_and_logged_as_doh() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("q.jsonl");
    let extra = format!("query_log: {{path: \"{}\", events: all}}\n", log.display());
    let (yaml, pem) = config(dir.path(), &extra);
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let mut send = h2(s.https[0], &pem).await;
    // POST over HTTP/2: the blocked name, with EDE 15, never forwarded.
    let q = query("s05.upd.kaspersky.com.", RecordType::A, Some(1232));
    let req = post("/dns-query", "application/dns-message", wire(&q));
    let (code, r) = read(send.send_request(req).await).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/dns-message");
    let blocked = Message::from_vec(r.body()).expect("dns");
    assert_eq!(blocked.metadata.id, q.metadata.id);
    assert_eq!(ede(&blocked).map(|e| e.0), Some(15), "{blocked:?}");
    assert!(up.seen_name("s05.upd.kaspersky.com").is_empty());
    // GET over HTTP/2: forwarded, and cacheable for the answer's TTL.
    let q = query("www.example.com.", RecordType::A, None);
    let (code, r) = read(send.send_request(get_query(&q)).await).await;
    assert_eq!(code, StatusCode::OK);
    let allowed = Message::from_vec(r.body()).expect("dns");
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.headers()["cache-control"], "max-age=300");
    assert_eq!(up.seen_name("www.example.com").len(), 1);
    // HTTP/1.1 on its own session: the same pipeline.
    let mut send = h1(s.https[0], &pem).await;
    let q = query("short-ttl.example.com.", RecordType::A, None);
    let req = post("/dns-query", "application/dns-message", wire(&q));
    let (code, r) = read(send.send_request(req).await).await;
    assert_eq!(code, StatusCode::OK);
    let short = Message::from_vec(r.body()).expect("dns");
    assert_eq!(short.answers.len(), 1, "{short:?}");
    let max_age = r.headers()["cache-control"].to_str().expect("ascii");
    assert!(
        ["max-age=2", "max-age=1", "max-age=0"].contains(&max_age),
        "{max_age}"
    );
    let samples = metrics(&s).await;
    assert_eq!(doh_queries(&samples, "block"), Some(1.0));
    assert_eq!(doh_queries(&samples, "allow"), Some(2.0));
    s.state
        .query_log
        .as_ref()
        .expect("log")
        .flush(Duration::from_secs(5));
    let records = std::fs::read_to_string(&log).expect("log");
    assert_eq!(records.lines().count(), 3, "{records}");
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(r["protocol"], "doh", "{line}");
        assert_eq!(r["client"], "127.0.0.1", "{line}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_carry_no_dns_query_get_http_errors_and_never_reach_the_pipeline() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, pem) = config(dir.path(), "https: {path: /q}\n");
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let mut send = h2(s.https[0], &pem).await;
    let q = wire(&query("www.example.com.", RecordType::A, None));
    let mut answer = q.clone();
    answer[2] |= 0x80;
    let cases: Vec<(&str, Request<Full<Bytes>>, StatusCode)> = vec![
        (
            "wrong content type",
            post("/q", "text/plain", q.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            Request::post("https://dns.test/q")
                .body(Full::new(Bytes::from(q.clone())))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "not DNS",
            post("/q", "application/dns-message", b"hello, world".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a DNS answer",
            post("/q", "application/dns-message", answer),
            StatusCode::BAD_REQUEST,
        ),
        (
            "over 65,535 bytes",
            post("/q", "application/dns-message", vec![0; 70_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("GET without dns=", get("/q?ct=1"), StatusCode::BAD_REQUEST),
        (
            "GET with bad base64",
            get("/q?dns=!!!"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            Request::put("https://dns.test/q")
                .header("content-type", "application/dns-message")
                .body(Full::new(Bytes::from(q.clone())))
                .expect("request"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "the default path, not configured here",
            post("/dns-query", "application/dns-message", q.clone()),
            StatusCode::NOT_FOUND,
        ),
    ];
    let n = cases.len();
    for (what, req, want) in cases {
        let (code, r) = read(send.send_request(req).await).await;
        assert_eq!(code, want, "{what}");
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(r.headers()["allow"], "GET, POST");
        }
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    let samples = metrics(&s).await;
    for action in ["allow", "block", "log"] {
        assert_eq!(doh_queries(&samples, action), Some(0.0), "{action}");
    }
    let rejected = value(
        &samples,
        "cutoff_dropped_total",
        &[("reason", "doh_rejected")],
    );
    assert_eq!(rejected, Some(n as f64));
    // The connection still serves a real query on the configured path.
    let req = post("/q", "application/dns-message", q);
    let (code, _) = read(send.send_request(req).await).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(up.seen_name("www.example.com").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_doh_connections_and_stalled_handshakes_does_not_stop_plain_dns() {
    let dir = tempfile::tempdir().expect("dir");
    let extra = "tcp: {max_connections: 8, max_per_client: 100, idle_timeout: 30s}\n";
    let (yaml, pem) = config(dir.path(), extra);
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    // Eight finished HTTP/2 sessions that send nothing more fill the DoH
    // table; forty more connections never start their handshake.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(h2(s.https[0], &pem).await);
    }
    let mut stalled = Vec::new();
    for _ in 0..40 {
        stalled.push(
            tokio::net::TcpStream::connect(s.https[0])
                .await
                .expect("connect"),
        );
    }
    let q = query("www.example.com.", RecordType::A, None);
    let (m, _) = udp(s.addr, "127.0.0.1", &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = tcp(s.addr, "127.0.0.1", &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // A new DoH client is still answered: the idle session longest
    // without a request makes room for it.
    let mut fresh = h2(s.https[0], &pem).await;
    let (code, r) = read(fresh.send_request(get_query(&q)).await).await;
    assert_eq!(code, StatusCode::OK);
    assert!(Message::from_vec(r.body()).is_ok());
    let samples = metrics(&s).await;
    let evicted = value(
        &samples,
        "cutoff_dropped_total",
        &[("reason", "tcp_evicted")],
    );
    assert!(evicted.is_some_and(|v| v >= 1.0), "{evicted:?}");
    drop((idle, stalled));
    s.stop().await;
}

#[test]
fn the_config_in_docs_encrypted_dns_loads_without_warnings() {
    let doc = std::fs::read_to_string(crate::util::root().join("docs/encrypted-dns.md"))
        .expect("docs/encrypted-dns.md");
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block");
    let dir = tempfile::tempdir().expect("dir");
    write_pair(dir.path());
    let d = dir.path().display().to_string();
    let yaml = block
        .replace("/etc/cutoff/tls/fullchain.pem", &format!("{d}/cert.pem"))
        .replace("/etc/cutoff/tls/privkey.pem", &format!("{d}/key.pem"))
        // The block shows the encrypted part of a config; no rules of its own.
        + "forward_only: true\n";
    let path = dir.path().join("cutoff.yaml");
    std::fs::write(&path, yaml).expect("write");
    let c = cutoff::config::load(&path).unwrap_or_else(|e| panic!("{e}: {e:?}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = c.tls.expect("tls");
    assert_eq!(t.listen_https.len(), 2);
    assert_eq!(t.name.as_deref(), Some("dns.home.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_told_the_configured_stream_cap() {
    let dir = tempfile::tempdir().expect("dir");
    let (yaml, pem) = config(dir.path(), "https: {max_streams: 7}\n");
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let tls = session(s.https[0], &pem, &[b"h2"]).await;
    let (send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut send = send.ready().await.expect("ready");
    // One exchange, so the server's SETTINGS have arrived and been applied.
    let q = wire(&query("s05.upd.kaspersky.com.", RecordType::A, None));
    let req = hyper::Request::post("https://dns.test/dns-query")
        .header("content-type", "application/dns-message")
        .body(())
        .expect("request");
    let (response, mut body) = send.send_request(req, false).expect("send");
    body.send_data(Bytes::from(q), true).expect("body");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("a response within 10 s")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(send.current_max_send_streams(), 7);
    s.stop().await;
}
