//! Upstream resolver addresses as written in the config or on the command
//! line: `udp://IP[:port]`, `tcp://…`, `tls://IP[:port]#name`,
//! `https://IP[:port]/path#name`, a bare `IP[:port]` (UDP with TCP fallback),
//! or `system` (the nameservers of /etc/resolv.conf).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One upstream resolver.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// The nameservers in /etc/resolv.conf, read at start and on reload.
    System,
    /// UDP, retried over TCP when the answer is truncated (`IP[:port]`
    /// or `udp://IP[:port]`).
    Plain(SocketAddr),
    /// TCP only.
    Tcp(SocketAddr),
    /// DNS over TLS, checking the certificate against `name`.
    Tls {
        /// Address and port (default 853).
        addr: SocketAddr,
        /// TLS server name.
        name: String,
    },
    /// DNS over HTTPS.
    Https {
        /// Address and port (default 443).
        addr: SocketAddr,
        /// URL path (default `/dns-query`).
        path: String,
        /// TLS server name.
        name: String,
    },
}

/// Why an upstream address was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{text}` is not an upstream: {reason} (examples: system, 9.9.9.9, udp://192.168.1.1:53, tls://9.9.9.9#dns.quad9.net, https://1.1.1.1/dns-query#cloudflare-dns.com)"
)]
pub struct UpstreamError {
    text: String,
    reason: UpstreamReason,
}

/// What is wrong with an upstream address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamReason {
    /// Not `IP`, `IP:port`, `[IPv6]` or `[IPv6]:port`.
    #[error("`{0}` is not an IP address with an optional port (host names are not accepted)")]
    Address(String),
    /// `tls://` without `#name`.
    #[error("DNS over TLS needs the server name after `#`")]
    TlsName,
    /// `https://` without `#name`.
    #[error("DNS over HTTPS needs the server name after `#`")]
    HttpsName,
    /// The name after `#` is not a domain.
    #[error("bad TLS server name: {0}")]
    ServerName(crate::blocklist::DomainError),
    /// A scheme other than udp, tcp, tls and https.
    #[error("unknown scheme `{0}`")]
    Scheme(String),
}

impl Upstream {
    /// Parses one upstream address.
    pub fn parse(text: &str) -> Result<Self, UpstreamError> {
        let err = |reason: UpstreamReason| UpstreamError {
            text: text.to_owned(),
            reason,
        };
        let t = text.trim();
        if t == "system" {
            return Ok(Self::System);
        }
        let (scheme, rest) = match t.split_once("://") {
            Some((s, r)) => (Some(s), r),
            None => (None, t),
        };
        match scheme {
            None => addr(rest, 53).map(Self::Plain).map_err(err),
            Some("udp") => addr(rest, 53).map(Self::Plain).map_err(err),
            Some("tcp") => addr(rest, 53).map(Self::Tcp).map_err(err),
            Some("tls") => {
                let (a, name) = rest
                    .split_once('#')
                    .ok_or_else(|| err(UpstreamReason::TlsName))?;
                let addr = addr(a, 853).map_err(err)?;
                Ok(Self::Tls {
                    addr,
                    name: server_name(name).map_err(err)?,
                })
            }
            Some("https") => {
                let (rest, name) = rest
                    .split_once('#')
                    .ok_or_else(|| err(UpstreamReason::HttpsName))?;
                let (a, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/dns-query"),
                };
                let addr = addr(a, 443).map_err(err)?;
                Ok(Self::Https {
                    addr,
                    path: path.to_owned(),
                    name: server_name(name).map_err(err)?,
                })
            }
            Some(other) => Err(err(UpstreamReason::Scheme(other.to_owned()))),
        }
    }

    /// The address, when the upstream is a single one.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Self::System => None,
            Self::Plain(a) | Self::Tcp(a) => Some(*a),
            Self::Tls { addr, .. } | Self::Https { addr, .. } => Some(*addr),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::Plain(a) => write!(f, "{a}"),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
            Self::Tls { addr, name } => write!(f, "tls://{addr}#{name}"),
            Self::Https { addr, path, name } => write!(f, "https://{addr}{path}#{name}"),
        }
    }
}

/// `IP`, `IP:port`, `[IPv6]` or `[IPv6]:port`. Names are refused: resolving
/// the resolver's upstream would need a resolver.
fn addr(text: &str, default_port: u16) -> Result<SocketAddr, UpstreamReason> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(UpstreamReason::Address(text.to_owned()))
}

fn server_name(name: &str) -> Result<String, UpstreamReason> {
    crate::blocklist::domain(name).map_err(UpstreamReason::ServerName)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(Upstream::parse("system").unwrap(), Upstream::System);
        assert_eq!(
            Upstream::parse("9.9.9.9").unwrap(),
            Upstream::Plain("9.9.9.9:53".parse().unwrap())
        );
        assert_eq!(
            Upstream::parse("[2620:fe::fe]:5353").unwrap(),
            Upstream::Plain("[2620:fe::fe]:5353".parse().unwrap())
        );
        assert_eq!(
            Upstream::parse("2620:fe::fe").unwrap(),
            Upstream::Plain("[2620:fe::fe]:53".parse().unwrap())
        );
        assert_eq!(
            Upstream::parse("udp://127.0.0.1:5300").unwrap(),
            Upstream::Plain("127.0.0.1:5300".parse().unwrap())
        );
        assert_eq!(
            Upstream::parse("tcp://127.0.0.1").unwrap(),
            Upstream::Tcp("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            Upstream::parse("tls://9.9.9.9#dns.quad9.net").unwrap(),
            Upstream::Tls {
                addr: "9.9.9.9:853".parse().unwrap(),
                name: "dns.quad9.net".into()
            }
        );
        assert_eq!(
            Upstream::parse("https://1.1.1.1/dns-query#cloudflare-dns.com")
                .unwrap()
                .to_string(),
            "https://1.1.1.1:443/dns-query#cloudflare-dns.com"
        );
    }

    #[test]
    fn host_names_and_missing_server_names_are_refused() {
        assert!(Upstream::parse("dns.google").is_err());
        assert!(Upstream::parse("tls://9.9.9.9").is_err());
        assert!(Upstream::parse("quic://9.9.9.9#x.y").is_err());
    }
}
