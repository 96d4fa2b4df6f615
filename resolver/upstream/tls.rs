//! DNS over TLS (RFC 7858) and over HTTPS (RFC 8484) for [`super::Upstreams`]:
//! rustls on ring (no C crypto to cross-compile for the Pi), the Mozilla
//! roots plus `upstream_ca`, one verified connection per try.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{SetupError, exchange_framed, matches, timed_out};
use crate::wire;

/// TLS client settings shared by the DoT and DoH endpoints of a runtime:
/// the Mozilla roots (webpki-roots) plus `upstream_ca`, rustls on ring, and
/// an in-memory session cache so repeated connections resume.
#[derive(Clone)]
pub struct Tls {
    dot: Arc<rustls::ClientConfig>,
    doh: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    pub(super) fn new(ca: Option<&Path>) -> Result<Self, SetupError> {
        let roots = crate::certs::roots(ca).map_err(|e| SetupError::Ca {
            path: e.path,
            reason: e.reason,
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let build = |alpn: &[u8]| -> Result<Arc<rustls::ClientConfig>, SetupError> {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| SetupError::Ca {
                    path: String::new(),
                    reason: e.to_string(),
                })?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Self {
            dot: build(b"dot")?,
            doh: build(b"http/1.1")?,
        })
    }
}

async fn tls_connect(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
    deadline: Instant,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let server = ServerName::try_from(name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tcp = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())??;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    timeout_at(deadline, connector.connect(server, tcp))
        .await
        .map_err(|_| timed_out())?
}

/// One query over DNS over TLS (RFC 7858): TCP framing inside TLS.
pub(super) async fn exchange_tls(
    tls: &Tls,
    addr: SocketAddr,
    name: &str,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let stream = tls_connect(&tls.dot, addr, name, deadline).await?;
    exchange_framed(stream, query, deadline).await
}

/// One query over DNS over HTTPS (RFC 8484): a POST of the wire message
/// with ID 0, over HTTP/1.1 on TLS.
pub(super) async fn exchange_https(
    tls: &Tls,
    addr: SocketAddr,
    name: &str,
    path: &str,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    use http_body_util::BodyExt as _;
    let stream = tls_connect(&tls.doh, addr, name, deadline).await?;
    let (mut sender, conn) = timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(io::Error::other)?;
    let driver = tokio::spawn(conn);
    let mut q = query.to_vec();
    // RFC 8484 4.1: ID 0, so HTTP caches can share answers.
    wire::set_id(&mut q, 0);
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, name)
        .header(hyper::header::CONTENT_TYPE, "application/dns-message")
        .header(hyper::header::ACCEPT, "application/dns-message")
        .body(http_body_util::Full::new(bytes::Bytes::from(q.clone())))
        .map_err(io::Error::other)?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        if response.status() != hyper::StatusCode::OK {
            return Err(io::Error::other(format!(
                "HTTP status {}",
                response.status()
            )));
        }
        let body = http_body_util::Limited::new(response.into_body(), usize::from(u16::MAX))
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        if !matches(&q, 0, &body) {
            return Err(io::Error::other("the answer does not match the question"));
        }
        Ok(body.to_vec())
    };
    let out = timeout_at(deadline, result)
        .await
        .map_err(|_| timed_out())?;
    driver.abort();
    out
}
