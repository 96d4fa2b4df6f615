//! Forwarding to upstream resolvers: per-try timeouts, failover in order,
//! TCP retry of truncated UDP answers, DNS over TLS (RFC 7858) and over
//! HTTPS (RFC 8484) with rustls on ring. Transparent: the answer's bytes
//! come back as the upstream sent them (rcode, flags, sections, EDNS
//! options).
//!
//! Sits at the end of the query flow for allowed and logged names, after the
//! policy decision and the cache: nothing reaches this module for a blocked
//! name. Every UDP exchange uses a new socket (a kernel-chosen random source
//! port) and a random ID, and an answer is accepted only when its source,
//! ID and question match (RFC 5452); forged or stray replies are ignored
//! and the wait goes on.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::config::Upstream;
use crate::metrics::UpstreamHandles;
use crate::wire;

mod tls;

pub use tls::Tls;
use tls::{exchange_https, exchange_tls};

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream answered within its time.
    #[error("no upstream answered ({tried} tried): {last}")]
    Unreachable {
        /// How many upstreams were tried.
        tried: usize,
        /// The last failure.
        last: String,
    },
}

/// Why the upstream list could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// /etc/resolv.conf has no usable nameserver.
    #[error("`system` upstream: {0}")]
    System(String),
    /// The upstream is this server itself.
    #[error("upstream {0} is one of cutoff's own listen addresses: queries would loop")]
    Loop(SocketAddr),
    /// The extra CA file for TLS upstreams could not be read.
    #[error("`upstream_ca` {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The upstreams of one snapshot, in order.
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// Endpoints tried in order (`system` already read into addresses).
    pub endpoints: Vec<Upstream>,
    /// TLS settings for DoT and DoH endpoints (`None` when there are none).
    tls: Option<Tls>,
    /// Time allowed for each try.
    pub timeout: Duration,
}

/// An answer and the endpoint that gave it.
#[derive(Debug)]
pub struct Answer {
    /// The answer's bytes, ID as sent upstream.
    pub bytes: Vec<u8>,
    /// Index of the endpoint in [`Upstreams::endpoints`].
    pub endpoint: usize,
}

impl Upstreams {
    /// Resolves the config's upstreams (`system` reads `resolv_conf`) and
    /// refuses any that is one of `listen`.
    pub fn new(
        upstreams: &[Upstream],
        timeout: Duration,
        listen: &[SocketAddr],
        resolv_conf: &Path,
        ca: Option<&Path>,
    ) -> Result<Self, SetupError> {
        let mut endpoints = Vec::new();
        for u in upstreams {
            match u {
                Upstream::System => {
                    for ip in system_nameservers(resolv_conf)? {
                        endpoints.push(Upstream::Plain(SocketAddr::new(ip, 53)));
                    }
                }
                other => endpoints.push(other.clone()),
            }
        }
        for addr in endpoints.iter().filter_map(Upstream::addr) {
            if listen.iter().any(|l| same_socket(*l, addr)) {
                return Err(SetupError::Loop(addr));
            }
        }
        let needs_tls = endpoints
            .iter()
            .any(|e| matches!(e, Upstream::Tls { .. } | Upstream::Https { .. }));
        let tls = if needs_tls { Some(Tls::new(ca)?) } else { None };
        Ok(Self {
            endpoints,
            timeout,
            tls,
        })
    }

    /// Sends `query` (wire bytes; its ID is replaced with a random one) to
    /// each upstream in turn until one answers.
    pub async fn forward(
        &self,
        query: &[u8],
        metrics: &[UpstreamHandles],
    ) -> Result<Answer, ForwardError> {
        let mut last = String::from("no upstreams");
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let started = Instant::now();
            let deadline = started + self.timeout;
            let result = match endpoint {
                Upstream::Plain(addr) => match exchange_udp(*addr, query, deadline).await {
                    Ok(bytes) if wire::truncated(&bytes) => {
                        exchange_tcp(*addr, query, deadline).await
                    }
                    other => other,
                },
                Upstream::Tcp(addr) => exchange_tcp(*addr, query, deadline).await,
                Upstream::Tls { addr, name } => match &self.tls {
                    Some(tls) => exchange_tls(tls, *addr, name, query, deadline).await,
                    None => Err(io::Error::other("no TLS settings")),
                },
                Upstream::Https { addr, name, path } => match &self.tls {
                    Some(tls) => exchange_https(tls, *addr, name, path, query, deadline).await,
                    None => Err(io::Error::other("no TLS settings")),
                },
                // `new` reads `system` into its addresses.
                Upstream::System => Err(io::Error::other("`system` was not read")),
            };
            let handles = metrics.get(i);
            match result {
                Ok(bytes) => {
                    if let Some(h) = handles {
                        h.ok.increment(1);
                        h.duration.record(started.elapsed().as_secs_f64());
                    }
                    return Ok(Answer { bytes, endpoint: i });
                }
                Err(e) => {
                    if let Some(h) = handles {
                        h.error.increment(1);
                    }
                    tracing::debug!(upstream = %endpoint, error = %e, "upstream try failed");
                    last = format!("{endpoint}: {e}");
                }
            }
        }
        Err(ForwardError::Unreachable {
            tried: self.endpoints.len(),
            last,
        })
    }
}

fn same_socket(listen: SocketAddr, upstream: SocketAddr) -> bool {
    if listen.port() != upstream.port() {
        return false;
    }
    let (l, u) = (listen.ip().to_canonical(), upstream.ip().to_canonical());
    // A wildcard listener receives what is sent to loopback of its own
    // family (IPv6 listeners are IPv6-only).
    l == u
        || (l.is_unspecified()
            && l.is_ipv4() == u.is_ipv4()
            && (u.is_loopback() || u.is_unspecified()))
}

/// The nameservers of a resolv.conf.
pub fn system_nameservers(path: &Path) -> Result<Vec<IpAddr>, SetupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SetupError::System(format!("cannot read {}: {e}", path.display())))?;
    let ips: Vec<IpAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|ip| ip.split('%').next().and_then(|ip| ip.parse().ok()))
        .collect();
    if ips.is_empty() {
        return Err(SetupError::System(format!(
            "no `nameserver` line in {}",
            path.display()
        )));
    }
    Ok(ips)
}

fn with_random_id(query: &[u8]) -> (Vec<u8>, u16) {
    let mut q = query.to_vec();
    let id: u16 = rand::random();
    wire::set_id(&mut q, id);
    (q, id)
}

/// The question section of a message (bytes 12..end of question), for
/// matching an answer to what was asked, case-insensitively.
fn question(msg: &[u8]) -> Option<&[u8]> {
    let end = wire::walk(msg)?.question_end;
    msg.get(12..end)
}

pub(super) fn matches(query: &[u8], id: u16, answer: &[u8]) -> bool {
    answer.len() >= 12
        && wire::id(answer) == id
        && answer[2] & 0x80 != 0
        && match (question(query), question(answer)) {
            (Some(q), Some(a)) => q.eq_ignore_ascii_case(a),
            // A header-only error answer (FORMERR) carries no question.
            (Some(_), None) => false,
            _ => false,
        }
}

async fn exchange_udp(addr: SocketAddr, query: &[u8], deadline: Instant) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(addr).await?;
    let (q, id) = with_random_id(query);
    socket.send(&q).await?;
    // We advertise 1232 bytes upstream; 4096 leaves room for upstreams that
    // ignore it without holding 64 KiB per query in flight.
    let mut buf = vec![0u8; 4096];
    loop {
        let n = timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
        // A connected socket only receives from `addr`; the ID and question
        // must match too, else it is a stray or forged reply: keep waiting.
        if matches(&q, id, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
        tracing::debug!(%addr, "ignored a UDP reply that does not match the query");
    }
}

async fn exchange_tcp(addr: SocketAddr, query: &[u8], deadline: Instant) -> io::Result<Vec<u8>> {
    let stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    exchange_framed(stream, query, deadline).await
}

pub(super) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// One query over a stream with RFC 1035 length framing (TCP and DoT).
pub(super) async fn exchange_framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let (q, id) = with_random_id(query);
    let len = u16::try_from(q.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    timeout_at(deadline, stream.write_all(&framed))
        .await
        .map_err(|_| timed_out())??;
    loop {
        let mut len = [0u8; 2];
        timeout_at(deadline, stream.read_exact(&mut len))
            .await
            .map_err(|_| timed_out())??;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        timeout_at(deadline, stream.read_exact(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if matches(&q, id, &buf) {
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_reads_every_nameserver_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(&p, "# c\nsearch lan\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\nnameserver  ::1 \noptions edns0\n").unwrap();
        let ips = system_nameservers(&p).unwrap();
        assert_eq!(ips.len(), 3);
        assert_eq!(ips[1], "fe80::1".parse::<IpAddr>().unwrap());
        std::fs::write(&p, "search lan\n").unwrap();
        assert!(system_nameservers(&p).is_err());
    }

    #[test]
    fn an_upstream_that_is_our_own_listener_is_refused() {
        let listen = ["0.0.0.0:53".parse().unwrap()];
        let err = Upstreams::new(
            &[Upstream::Plain("127.0.0.1:53".parse().unwrap())],
            Duration::from_secs(1),
            &listen,
            Path::new("/etc/resolv.conf"),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, SetupError::Loop(_)));
        assert!(
            Upstreams::new(
                &[Upstream::Plain("127.0.0.1:5300".parse().unwrap())],
                Duration::from_secs(1),
                &listen,
                Path::new("/etc/resolv.conf"),
                None,
            )
            .is_ok()
        );
    }
}
