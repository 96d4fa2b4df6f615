//! DNS over HTTPS (RFC 8484): one TLS session (ALPN `h2` or `http/1.1`)
//! served by hyper, one DNS message per request: `GET <path>?dns=` with the
//! query in base64url, or `POST <path>` with an `application/dns-message`
//! body.
//!
//! Sits in `server`, between the TLS accept loop (`tls.rs`: the connection
//! table, the handshake timeout, the certificate in force) and the
//! pipeline. A request that is not a DNS query (wrong path, method or
//! content type, a body over 65,535 bytes, bytes that are no DNS message)
//! gets its HTTP error here and never reaches the pipeline. The connection
//! obeys the plain TCP limits: `tcp.idle_timeout` with no request open,
//! `tcp.max_queries` requests, eviction by the connection table, and
//! `https.max_streams` concurrent HTTP/2 streams.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::conns::{Lease, Slot};
use super::{Limits, sent, stopped};
use crate::metrics::Dropped;
use crate::pipeline::{self, Protocol, Step};
use crate::runtime::State;

/// The media type of a DNS message (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";

/// The largest DNS message, so the largest request body taken.
const MAX_BODY: usize = 65_535;

/// What a DoH listener serves, besides the TLS settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `https.path` and `https.max_streams`.
    pub https: crate::config::Https,
}

/// What the requests of one connection share.
struct Conn {
    state: Arc<State>,
    inflight: Arc<Semaphore>,
    client: SocketAddr,
    path: String,
    limits: Limits,
    slot: Arc<Slot>,
    /// Requests read, and requests still open.
    requests: AtomicUsize,
    open: AtomicUsize,
    /// Woken when a request starts or ends (resets the idle timer).
    activity: Notify,
}

/// Serves one TLS session until the client closes it, it idles out, it
/// reaches `tcp.max_queries` requests, the table evicts it, or shutdown is
/// asked for; then it closes gracefully (HTTP/2 GOAWAY), letting open
/// requests finish within `tcp.idle_timeout`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn connection<S>(
    stream: S,
    client: SocketAddr,
    state: Arc<State>,
    limits: Limits,
    inflight: Arc<Semaphore>,
    lease: &Lease,
    mut shutdown: watch::Receiver<bool>,
    settings: &Settings,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(Conn {
        state,
        inflight,
        client,
        path: settings.https.path.clone(),
        limits,
        slot: lease.slot.clone(),
        requests: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
        activity: Notify::new(),
    });
    let service = hyper::service::service_fn({
        let conn = conn.clone();
        move |req| {
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(request(&conn, req).await) }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.tcp_idle)
        .max_buf_size(128 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.https.max_streams)
        .max_header_list_size(128 * 1024);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let stop = stopped(&mut shutdown);
    tokio::pin!(stop);
    let evicted = lease.slot.evicted();
    tokio::pin!(evicted);
    let idle = sleep_until(Instant::now() + limits.tcp_idle);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = served.as_mut() => return,
            () = conn.activity.notified() => {
                idle.as_mut().reset(Instant::now() + limits.tcp_idle);
                if conn.requests.load(Ordering::Relaxed) >= limits.tcp_queries {
                    break;
                }
            }
            // Idle only with no request open: a slow upstream answer is
            // not the client's idleness.
            () = &mut idle => {
                if conn.open.load(Ordering::Relaxed) == 0 {
                    break;
                }
                idle.as_mut().reset(Instant::now() + limits.tcp_idle);
            }
            () = &mut stop => break,
            () = &mut evicted => break,
        }
    }
    served.as_mut().graceful_shutdown();
    let _ = timeout(limits.tcp_idle, served).await;
}

/// One HTTP request: its DNS message through the pipeline, or an HTTP error.
async fn request(conn: &Conn, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let n = conn
        .requests
        .fetch_add(1, Ordering::Relaxed)
        .saturating_add(1);
    // Open until dropped: hyper drops this future when the client resets
    // the stream, and the connection must not stay busy (unevictable, never
    // idle) for good because of it.
    let _open = Open::new(conn);
    if n > conn.limits.tcp_queries {
        // Read after the cap, before the connection's GOAWAY went out.
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    match message(conn, req).await {
        Ok(msg) => answer(conn, &msg).await,
        Err(code) => {
            conn.state.metrics.dropped(Dropped::DohRejected);
            status(code)
        }
    }
}

/// One request open on a connection, from its first byte to its answer or
/// its reset: the connection is busy (never evicted, never idle) while any
/// is open.
struct Open<'a>(&'a Conn);

impl<'a> Open<'a> {
    fn new(conn: &'a Conn) -> Self {
        conn.open.fetch_add(1, Ordering::Relaxed);
        conn.slot.touch();
        // Busy before the upstream can see it: never evicted with a query in hand.
        conn.slot.set_busy(true);
        conn.activity.notify_one();
        Self(conn)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.slot.set_busy(false);
        }
        self.0.activity.notify_one();
    }
}

/// The DNS query a request carries, or the HTTP status that refuses it.
async fn message(conn: &Conn, req: Request<Incoming>) -> Result<Vec<u8>, StatusCode> {
    if req.uri().path() != conn.path {
        return Err(StatusCode::NOT_FOUND);
    }
    let msg = match *req.method() {
        Method::GET => dns_param(req.uri().query()).ok_or(StatusCode::BAD_REQUEST)?,
        Method::POST => {
            let media = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::trim);
            if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_BODY as u64) {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            // A body trickled in byte by byte gets the idle timeout, as
            // a slow TCP query does.
            let body = Limited::new(req.into_body(), MAX_BODY).collect();
            match timeout(conn.limits.tcp_idle, body).await {
                Ok(Ok(b)) => b.to_bytes().to_vec(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                Ok(Err(_)) => return Err(StatusCode::BAD_REQUEST),
                Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            }
        }
        _ => return Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    if !is_query(&msg) {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(msg)
}

/// The `dns` parameter of a query string, decoded (base64url without
/// padding, RFC 8484 §4.1; padding is tolerated).
fn dns_param(query: Option<&str>) -> Option<Vec<u8>> {
    let value = query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("dns="))?
        .trim_end_matches('=');
    if value.len() > MAX_BODY.div_ceil(3) * 4 {
        return None;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()
}

/// Whether `msg` is a well-formed DNS query (QR=0, one question, every
/// record in bounds): anything else is the client's mistake, answered
/// with 400 rather than a DNS error.
fn is_query(msg: &[u8]) -> bool {
    let header_ok = matches!(msg, [_, _, flags, _, 0, 1, ..] if flags & 0x80 == 0);
    header_ok && crate::wire::outline(msg).is_some()
}

/// The pipeline's answer to `msg` as an HTTP response.
async fn answer(conn: &Conn, msg: &[u8]) -> Response<Full<Bytes>> {
    let state = &conn.state;
    let (bytes, outcome) = match pipeline::prepare(state, msg, conn.client, Protocol::Doh) {
        Step::Reply(bytes, outcome) => (bytes, outcome),
        Step::Forward(p) => {
            let Ok(permit) = conn.inflight.clone().try_acquire_owned() else {
                state.metrics.dropped(Dropped::InflightFull);
                return status(StatusCode::SERVICE_UNAVAILABLE);
            };
            let answer = pipeline::finish(state, p).await;
            drop(permit);
            answer
        }
    };
    let Some(b) = bytes else {
        // A client the config drops (`access.denied: drop`): HTTP has no
        // silence, so it gets a refusal without a DNS message.
        pipeline::observe(state, None, outcome);
        return status(StatusCode::FORBIDDEN);
    };
    let max_age = max_age(&b);
    let body = Bytes::copy_from_slice(&b);
    sent(state, Ok(()), &b, outcome);
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Ok(v) = HeaderValue::from_str(&max_age) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}

/// `Cache-Control` for an answer: `max-age` of its smallest TTL (RFC 8484
/// §5.1), 0 when it has no records to take one from.
fn max_age(answer: &[u8]) -> String {
    let ttl = crate::wire::walk(answer)
        .and_then(|l| {
            l.ttls
                .iter()
                .map(|&at| crate::wire::ttl_at(answer, usize::from(at)))
                .min()
        })
        .unwrap_or(0);
    format!("max-age={ttl}")
}

/// A bodiless response with `code` (405 says which methods are served).
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    if code == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `a.test` A, ID 0 (RFC 8484 §4.1 example form).
    const QUERY: &[u8] = &[
        0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
    ];

    #[test]
    fn the_dns_parameter_is_read_as_base64url_with_or_without_padding() {
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(QUERY);
        let q = format!("ct=x&dns={text}");
        assert_eq!(dns_param(Some(&q)).as_deref(), Some(QUERY));
        assert_eq!(
            dns_param(Some(&format!("dns={text}=="))).as_deref(),
            Some(QUERY)
        );
        assert_eq!(dns_param(Some("dns=***")), None);
        assert_eq!(dns_param(Some("other=1")), None);
        assert_eq!(dns_param(None), None);
    }

    #[test]
    fn only_well_formed_queries_pass_the_check() {
        assert!(is_query(QUERY));
        let mut answer = QUERY.to_vec();
        answer[2] |= 0x80;
        assert!(!is_query(&answer));
        assert!(!is_query(&QUERY[..QUERY.len() - 1]));
        assert!(!is_query(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!is_query(&[]));
    }

    #[test]
    fn max_age_is_the_smallest_ttl_and_zero_without_records() {
        assert_eq!(max_age(QUERY), "max-age=0");
        let mut a = QUERY.to_vec();
        a[2] |= 0x80;
        a[7] = 2; // ANCOUNT 2
        for ttl in [300u32, 60] {
            a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            a.extend_from_slice(&ttl.to_be_bytes());
            a.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        }
        assert_eq!(max_age(&a), "max-age=60");
    }
}
