//! DNS over TLS and over HTTPS upstreams, against real TLS servers in the
//! test (certificates from a throw-away CA, trusted through `upstream_ca`)
//! that relay to the recording upstream over TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fakeup::{Fakeup, Transport};
use crate::harness::{query, serve, udp};

/// A CA (PEM, for `upstream_ca`) and a server config for `name` signed by it.
fn pki(name: &str, alpn: &[u8]) -> (String, Arc<rustls::ServerConfig>) {
    let (ca_cert, issuer) = test_ca();
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    (ca_cert.pem(), server_config(&leaf, &leaf_key, alpn))
}

/// A throw-away CA: its certificate and the issuer that signs with it.
pub(crate) fn test_ca() -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    (ca_cert, Issuer::new(ca, ca_key))
}

/// A rustls server config (ring) showing `leaf`, offering `alpn`.
pub(crate) fn server_config(
    leaf: &rcgen::Certificate,
    leaf_key: &KeyPair,
    alpn: &[u8],
) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)
    .expect("server config");
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Relays one DNS message to the fake upstream over TCP.
async fn relay(upstream: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(upstream).await.expect("upstream");
    let mut framed = u16::try_from(msg.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).await.expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.expect("len");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.expect("body");
    buf
}

/// A DNS-over-TLS server: framed queries in, relayed, framed answers out.
async fn dot_server(config: Arc<rustls::ServerConfig>, upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut len = [0u8; 2];
                while tls.read_exact(&mut len).await.is_ok() {
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if tls.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let a = relay(upstream, &q).await;
                    let mut out = u16::try_from(a.len()).expect("len").to_be_bytes().to_vec();
                    out.extend_from_slice(&a);
                    if tls.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A DNS-over-HTTPS server (HTTP/1.1 POST on /dns-query).
async fn doh_server(config: Arc<rustls::ServerConfig>, upstream: SocketAddr) -> SocketAddr {
    use http_body_util::BodyExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let ok = req.method() == hyper::Method::POST
                            && req.uri().path() == "/dns-query"
                            && req
                                .headers()
                                .get(hyper::header::CONTENT_TYPE)
                                .is_some_and(|v| v == "application/dns-message");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, answer) = if ok && body.len() >= 12 && body[0..2] == [0, 0] {
                            (200, relay(upstream, &body).await)
                        } else {
                            (400, Vec::new())
                        };
                        let response = hyper::Response::builder()
                            .status(status)
                            .header(hyper::header::CONTENT_TYPE, "application/dns-message")
                            .body(http_body_util::Full::new(bytes::Bytes::from(answer)))
                            .expect("response");
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

async fn check(upstream_url: &str, ca_pem: &str, up: &Fakeup) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("ca");
    let cfg = format!(
        "upstreams: [\"{upstream_url}\"]\nupstream_timeout: 3s\nupstream_ca: \"{}\"\nlists:\n  kaspersky: {{builtin: kaspersky}}\nrules:\n  - {{name: cut, lists: [kaspersky], action: block}}\n",
        ca.display()
    );
    let s = serve(&cfg, up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{upstream_url}"
    );
    assert_eq!(
        m.answers[0].data,
        RData::A("192.0.2.1".parse().expect("ip"))
    );
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("nope.nx.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "negative answers pass through"
    );
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("s05.upd.kaspersky.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let seen = up.seen_name("www.example.com");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].transport,
        Transport::Tcp,
        "relayed by the TLS server"
    );
    assert!(
        up.seen_name("s05.upd.kaspersky.com").is_empty(),
        "blocked names never leave"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_upstream_answers_through_a_verified_certificate() {
    let up = Fakeup::start().await;
    let (ca, config) = pki("dot.test", b"dot");
    let addr = dot_server(config, up.addr()).await;
    check(&format!("tls://{addr}#dot.test"), &ca, &up).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_https_upstream_answers_through_a_verified_certificate() {
    let up = Fakeup::start().await;
    let (ca, config) = pki("doh.test", b"http/1.1");
    let addr = doh_server(config, up.addr()).await;
    check(&format!("https://{addr}/dns-query#doh.test"), &ca, &up).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    let up = Fakeup::start().await;
    let (ca, config) = pki("other.test", b"dot");
    let addr = dot_server(config, up.addr()).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).expect("ca");
    let cfg = format!(
        "upstreams: [\"tls://{addr}#dot.test\"]\nupstream_timeout: 2s\nupstream_ca: \"{}\"\n",
        ca_path.display()
    );
    let s = serve(&cfg, up.addr()).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        up.seen().is_empty(),
        "nothing was sent over the unverified connection"
    );
    s.stop().await;
}
