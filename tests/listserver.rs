//! A list server for the URL-list tests: HTTPS on 127.0.0.1:0 with
//! certificates from a throw-away CA (rcgen), answering each path as the
//! test says, well or badly (huge, dribbling, HTML, redirect loops,
//! resets), and recording every request's headers. HTTP/1.1 written by
//! hand, so a misbehaviour is exactly the bytes the test asks for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, date_time_ymd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a path is answered.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// 200 with this body and ETag; 304 when the request names the ETag.
    Body {
        body: Vec<u8>,
        etag: &'static str,
        gzip: bool,
    },
    /// A bare status (404, 500).
    Status(u16),
    /// 302 to this location.
    Redirect(&'static str),
    /// Declares `Content-Length: 10 GiB` and sends zeros until the client goes.
    Huge,
    /// Chunked zeros without a length, until the client goes (at most 256 MiB).
    Endless,
    /// Declares 1000 bytes and sends one a second.
    Dribble,
    /// Declares 100000 bytes, sends 100, then resets the connection.
    Reset,
}

/// Which certificate the server shows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cert {
    /// Signed by the test CA, valid now.
    Good,
    /// Signed by the test CA, expired in 2021.
    Expired,
    /// Self-signed (no CA the client trusts).
    SelfSigned,
}

/// A running list server.
pub(crate) struct ListServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The CA to trust (`upstream_ca`), PEM.
    pub(crate) ca_pem: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Seen>,
}

impl ListServer {
    /// Starts a server showing `cert`.
    pub(crate) async fn start(cert: Cert) -> Self {
        let (ca_pem, config) = pki(cert);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let seen: Arc<Seen> = Arc::default();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (r, s) = (routes.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, r, s) = (acceptor.clone(), r.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    answer(tls, &r, &s).await;
                });
            }
        });
        Self {
            addr,
            ca_pem,
            routes,
            seen,
        }
    }

    /// Answers `path` with `reply` from now on.
    pub(crate) fn route(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_owned(), reply);
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The value of header `name` in each request for `path`, in order.
    pub(crate) fn header(&self, path: &str, name: &str) -> Vec<Option<String>> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }
}

type Tls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
/// Each request's path and headers.
type Seen = Mutex<Vec<(String, Vec<(String, String)>)>>;

async fn answer(mut tls: Tls, routes: &Mutex<HashMap<String, Reply>>, seen: &Seen) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let inm = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("if-none-match"))
        .map(|(_, v)| v.clone());
    seen.lock().expect("seen").push((path.clone(), headers));
    let reply = routes.lock().expect("routes").get(&path).cloned();
    let head = |status: &str, extra: &str| {
        format!("HTTP/1.1 {status}\r\n{extra}Connection: close\r\n\r\n")
    };
    match reply.unwrap_or(Reply::Status(404)) {
        Reply::Body { body, etag, gzip } => {
            if inm.as_deref() == Some(etag) {
                let _ = tls
                    .write_all(head("304 Not Modified", &format!("ETag: {etag}\r\n")).as_bytes())
                    .await;
            } else {
                let body = if gzip {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    std::io::Write::write_all(&mut e, &body).expect("gzip");
                    e.finish().expect("gzip")
                } else {
                    body
                };
                let enc = if gzip {
                    "Content-Encoding: gzip\r\n"
                } else {
                    ""
                };
                let extra = format!("ETag: {etag}\r\n{enc}Content-Length: {}\r\n", body.len());
                let _ = tls.write_all(head("200 OK", &extra).as_bytes()).await;
                let _ = tls.write_all(&body).await;
            }
        }
        Reply::Status(code) => {
            let _ = tls
                .write_all(head(&format!("{code} Oops"), "Content-Length: 0\r\n").as_bytes())
                .await;
        }
        Reply::Redirect(to) => {
            let extra = format!("Location: {to}\r\nContent-Length: 0\r\n");
            let _ = tls.write_all(head("302 Found", &extra).as_bytes()).await;
        }
        Reply::Huge => {
            let extra = format!("Content-Length: {}\r\n", 10u64 << 30);
            let _ = tls.write_all(head("200 OK", &extra).as_bytes()).await;
            let zeros = vec![b'a'; 64 << 10];
            for _ in 0..(10u64 << 30) / (64 << 10) {
                if tls.write_all(&zeros).await.is_err() {
                    return;
                }
            }
        }
        Reply::Endless => {
            let _ = tls
                .write_all(head("200 OK", "Transfer-Encoding: chunked\r\n").as_bytes())
                .await;
            let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
            chunk.extend(std::iter::repeat_n(b'a', 64 << 10));
            chunk.extend_from_slice(b"\r\n");
            for _ in 0..4096 {
                if tls.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Reply::Dribble => {
            let _ = tls
                .write_all(head("200 OK", "Content-Length: 1000\r\n").as_bytes())
                .await;
            for _ in 0..1000 {
                if tls.write_all(b"a").await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Reply::Reset => {
            let _ = tls
                .write_all(head("200 OK", "Content-Length: 100000\r\n").as_bytes())
                .await;
            let _ = tls.write_all(&[b'a'; 100]).await;
            let _ = tls.flush().await;
            // SO_LINGER 0: close sends RST, not FIN.
            let _ = tls.get_ref().0.set_zero_linger();
            drop(tls);
            return;
        }
    }
    let _ = tls.shutdown().await;
}

/// The test CA (PEM) and a server config showing `cert` for 127.0.0.1.
fn pki(cert: Cert) -> (String, Arc<rustls::ServerConfig>) {
    let (ca_cert, issuer) = crate::tls_upstream::test_ca();
    let leaf_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    let leaf = match cert {
        Cert::Good => params.signed_by(&leaf_key, &issuer),
        Cert::Expired => {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
            params.signed_by(&leaf_key, &issuer)
        }
        Cert::SelfSigned => params.self_signed(&leaf_key),
    }
    .expect("leaf");
    let config = crate::tls_upstream::server_config(&leaf, &leaf_key, b"http/1.1");
    (ca_cert.pem(), config)
}
