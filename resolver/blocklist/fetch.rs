//! Downloading a URL list (`lists.NAME.url`): one bounded HTTP/1.1 GET over
//! rustls on ring (the stack the DoH upstream uses), with conditional GET,
//! gzip, a few redirects and hard limits on time and size.
//!
//! Outside the query flow: the refresher (the crate's `refresh`) and `cutoff
//! lists update` call it; what it returns is checked and stored by
//! [`super::lastgood`] before a reload builds a snapshot from it. Nothing
//! here touches the running policy, so every failure keeps the old list.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::http::uri::{Scheme, Uri};
use hyper::{StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::UrlSource;

/// Redirects followed before a fetch gives up (a loop ends here).
pub const MAX_REDIRECTS: usize = 5;

/// The validators of a stored copy, sent back for a conditional GET.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// `ETag` of the response.
    pub etag: Option<String>,
    /// `Last-Modified` of the response.
    pub last_modified: Option<String>,
}

/// What a fetch brought back.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the stored copy is current.
    NotModified,
    /// A new body (already gunzipped), with its validators.
    Body {
        /// The list text.
        bytes: Vec<u8>,
        /// Validators for the next conditional GET.
        validators: Validators,
    },
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be fetched as written.
    #[error("{url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The whole fetch took longer than `timeout`.
    #[error("{url}: no complete answer within {}s (timeout)", .limit.as_secs_f64())]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        limit: Duration,
    },
    /// Name resolution, TCP or TLS failed (an untrusted, expired or
    /// self-signed certificate ends here).
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with a status other than 200 or 304.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("{url}: more than {MAX_REDIRECTS} redirects (a redirect loop?)")]
    Redirects {
        /// The first URL.
        url: String,
    },
    /// The body is larger than `max_bytes` (after gunzip too).
    #[error("{url}: the body is larger than {limit} bytes (`max_bytes`)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The connection broke while the body was read, or the body is bad.
    #[error("{url}: the body could not be read: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl FetchError {
    fn url(url: &str, reason: impl Into<String>) -> Self {
        Self::Url {
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Checks a URL as `cutoff check` does: `https://HOST[:PORT]/PATH`, or
/// `http://` when `allow_http`; no fetch.
pub fn check_url(url: &str, allow_http: bool) -> Result<Uri, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::url(url, format!("not a URL: {e}")))?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => {}
        Some(s) if *s == Scheme::HTTP && allow_http => {}
        Some(s) if *s == Scheme::HTTP => {
            return Err(FetchError::url(
                url,
                "plain http:// can be altered on the way; use https://, or set `allow_http: true` for this list",
            ));
        }
        _ => return Err(FetchError::url(url, "needs https:// (or http://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(FetchError::url(url, "no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(FetchError::url(url, "user names in URLs are not supported"));
    }
    Ok(uri)
}

/// Fetches `source.url` once, conditionally on `known`, within
/// `source.timeout` for the whole exchange (a server that dribbles a byte
/// a second ends here too).
pub async fn fetch(source: &UrlSource, known: Option<&Validators>) -> Result<Fetched, FetchError> {
    let url = source.url.as_str();
    let tls = tls_config(source).map_err(|reason| FetchError::Connect {
        url: url.to_owned(),
        reason,
    })?;
    tokio::time::timeout(source.timeout, follow(source, known, &tls))
        .await
        .map_err(|_| FetchError::Timeout {
            url: url.to_owned(),
            limit: source.timeout,
        })?
}

fn tls_config(source: &UrlSource) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = crate::certs::roots(source.ca.as_deref()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

async fn follow(
    source: &UrlSource,
    known: Option<&Validators>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Fetched, FetchError> {
    let mut uri = check_url(&source.url, source.allow_http)?;
    for _ in 0..=MAX_REDIRECTS {
        match get(source, &uri, known, tls).await? {
            Step::Done(f) => return Ok(f),
            Step::Redirect(location) => {
                let next = resolve(&uri, &location);
                // The same scheme rules as the configured URL: no silent
                // downgrade from https to http.
                uri = check_url(&next, source.allow_http).map_err(|e| {
                    FetchError::url(&source.url, format!("redirected to {next}: {e}"))
                })?;
            }
        }
    }
    Err(FetchError::Redirects {
        url: source.url.clone(),
    })
}

/// `location` against `base`: absolute URLs as they are, `/path` on the
/// same origin, anything else beside the base path.
fn resolve(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map_or("", |a| a.as_str());
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = base.path();
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{scheme}://{authority}{dir}{location}")
}

enum Step {
    Done(Fetched),
    Redirect(String),
}

async fn get(
    source: &UrlSource,
    uri: &Uri,
    known: Option<&Validators>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Step, FetchError> {
    let url = source.url.as_str();
    let connect = |reason: String| FetchError::Connect {
        url: url.to_owned(),
        reason,
    };
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| connect(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| connect(format!("{host} has no address")))?,
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| connect(format!("{addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = hyper::Request::get(path)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!("cutoff/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::CONNECTION, "close");
    if let Some(v) = known {
        if let Some(etag) = &v.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &v.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, lm);
        }
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| FetchError::url(url, e.to_string()))?;
    let (response, _driver) = if https {
        let name =
            ServerName::try_from(host.to_owned()).map_err(|e| connect(format!("{host}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| connect(format!("TLS: {e}")))?;
        send(TokioIo::new(stream), request, url).await?
    } else {
        send(TokioIo::new(tcp), request, url).await?
    };
    read(source, response).await
}

async fn send<T>(
    io: T,
    request: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
    url: &str,
) -> Result<(hyper::Response<hyper::body::Incoming>, Driver), FetchError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let broken = |e: hyper::Error| FetchError::Connect {
        url: url.to_owned(),
        reason: format!("HTTP: {e}"),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(broken)?;
    let driver = Driver(tokio::spawn(conn));
    let response = sender.send_request(request).await.map_err(broken)?;
    Ok((response, driver))
}

/// The connection task, ended when the fetch is done or given up (a
/// timeout drops the fetch, and with it this).
struct Driver(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn read(
    source: &UrlSource,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Step, FetchError> {
    let url = source.url.as_str();
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Step::Done(Fetched::NotModified));
    }
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            })?;
        return Ok(Step::Redirect(location.to_owned()));
    }
    if status != StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_owned(),
        limit: source.max_bytes,
    };
    let headers = response.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A declared 10 GiB body is refused before a byte of it is read.
    if declared.is_some_and(|n| n > source.max_bytes) {
        return Err(too_large());
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let validators = Validators {
        etag: text(header::ETAG),
        last_modified: text(header::LAST_MODIFIED),
    };
    let gzip = text(header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let limit = usize::try_from(source.max_bytes).unwrap_or(usize::MAX);
    // One buffer, sized once from the declared length: a 20 MB list is held
    // once while it downloads, not as frames plus a joined copy.
    let mut body = Vec::with_capacity(
        declared
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(limit),
    );
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| FetchError::Body {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit.saturating_sub(body.len()) {
                return Err(too_large());
            }
            body.extend_from_slice(&data);
        }
    }
    let bytes = if gzip {
        // The limit holds after decompression too: a small gzip bomb
        // stops at `max_bytes + 1`.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .take(source.max_bytes.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| FetchError::Body {
                url: url.to_owned(),
                reason: format!("gzip: {e}"),
            })?;
        if out.len() as u64 > source.max_bytes {
            return Err(too_large());
        }
        out
    } else {
        body
    };
    Ok(Step::Done(Fetched::Body { bytes, validators }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_the_opt_in() {
        assert!(check_url("https://lists.example/ads.txt", false).is_ok());
        let err = check_url("http://lists.example/ads.txt", false).unwrap_err();
        assert!(err.to_string().contains("allow_http: true"), "{err}");
        assert!(check_url("http://lists.example/ads.txt", true).is_ok());
    }

    #[test]
    fn urls_without_a_host_or_with_other_schemes_are_refused() {
        for bad in [
            "ftp://lists.example/a",
            "lists.example/a",
            "https://",
            "https://user@lists.example/a",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_redirects_stay_on_the_same_origin() {
        let base: Uri = "https://127.0.0.1:8443/lists/a.txt".parse().unwrap();
        assert_eq!(resolve(&base, "/b.txt"), "https://127.0.0.1:8443/b.txt");
        assert_eq!(
            resolve(&base, "c.txt"),
            "https://127.0.0.1:8443/lists/c.txt"
        );
        assert_eq!(resolve(&base, "http://x.example/"), "http://x.example/");
    }
}
