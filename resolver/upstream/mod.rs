//! Forwarding to upstream resolvers: retransmits on a smoothed RTT per
//! upstream within one total budget per query, failover fastest first, TCP
//! retry of truncated UDP answers, an EDNS fallback per upstream, DNS over
//! TLS (RFC 7858) and over HTTPS (RFC 8484) with rustls on ring.
//! Transparent: the answer's bytes come back as the upstream sent them
//! (rcode, flags, sections, EDNS options), whether or not every record in
//! them could be parsed.
//!
//! Sits at the end of the query flow for allowed and logged names, after the
//! policy decision and the cache: nothing reaches this module for a blocked
//! name. `forward` schedules the tries, `transport` does one exchange,
//! `sockets` keeps each UDP endpoint's sockets for reuse, `health`
//! remembers each upstream's RTT and EDNS support.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Upstream;

mod error;
mod forward;
mod health;
mod sockets;
mod tls;
mod transport;

pub use error::{Failure, ForwardError};
use health::Health;
pub use tls::Tls;
use transport::{exchange_framed, matches, timed_out};

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
    /// The total time one query may spend on upstreams, retransmits and
    /// failover included.
    pub budget: Duration,
    /// What each endpoint's past queries showed, by index.
    health: Arc<[Health]>,
    /// Each UDP endpoint's reusable sockets, by index.
    udp: Arc<sockets::Pools>,
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
    /// refuses any that is one of `listen`; `budget` is the total time one
    /// query may spend on them.
    pub fn new(
        upstreams: &[Upstream],
        budget: Duration,
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
        let epoch = tokio::time::Instant::now();
        let health = endpoints.iter().map(|_| Health::new(epoch)).collect();
        let udp = Arc::new(sockets::Pools::new(endpoints.iter().map(|e| match e {
            Upstream::Plain(addr) => Some(*addr),
            _ => None,
        })));
        Ok(Self {
            endpoints,
            budget,
            tls,
            health,
            udp,
        })
    }
}

impl Upstreams {
    /// The smoothed round-trip time of endpoint `i` (`None`: never
    /// measured, or no such endpoint), for the status page.
    pub fn srtt(&self, i: usize) -> Option<Duration> {
        self.health.get(i).and_then(Health::srtt)
    }

    /// Failed queries to endpoint `i` since this runtime was built (the
    /// last start or reload).
    pub fn failures(&self, i: usize) -> u64 {
        self.health.get(i).map_or(0, Health::failures)
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
