//! `listen_tls`, `listen_https`, `tls:` and `https:` validated: the DoT and
//! DoH listen addresses and the certificate pair they share, loaded here so
//! that `cutoff check` and a reload report a bad pair with its line and
//! change nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::check::Checker;
use super::check::socket;
use super::raw::{At, RawConfig};

/// The encrypted listeners and their certificate pair.
#[derive(Clone, Debug)]
pub struct Tls {
    /// `listen_tls`: DoT addresses (port 853 unless written).
    pub listen: Vec<SocketAddr>,
    /// `listen_https`: DoH addresses (port 443 unless written).
    pub listen_https: Vec<SocketAddr>,
    /// `https.*`: what the DoH listeners serve.
    pub https: Https,
    /// `tls.name`: the name the certificate is for (lowercase), the target
    /// DDR names (RFC 9462 §4).
    pub name: Option<String>,
    /// `tls.certificate`, resolved against the config's folder.
    pub certificate: PathBuf,
    /// `tls.key`, resolved against the config's folder.
    pub key: PathBuf,
    /// `tls.handshake_timeout` (default 5 s).
    pub handshake_timeout: Duration,
    /// The pair as loaded when the config was validated, offering ALPN `dot`.
    pub server: Arc<rustls::ServerConfig>,
    /// The same pair offering ALPN `h2` and `http/1.1` (DoH).
    pub https_server: Arc<rustls::ServerConfig>,
    /// When the certificate expires (Unix seconds), if it could be read.
    pub not_after: Option<i64>,
    /// The SVCB RDATAs that DDR answers `_dns.resolver.arpa` with.
    pub designations: Vec<Vec<u8>>,
}

/// What a DoH listener serves (`https:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Https {
    /// `https.path`: where queries are taken (default `/dns-query`).
    pub path: String,
    /// `https.max_streams`: HTTP/2 streams one connection may have open at
    /// once (default 100).
    pub max_streams: u32,
}

/// A certificate expiring sooner than this is warned about.
const WARN_BEFORE_SECS: i64 = 14 * 86_400;

/// `None` without `listen_tls` and `listen_https`; a listener without a
/// pair is an error.
pub(super) fn tls(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Option<Tls> {
    let (items, key_name) = match (&raw.listen_tls, &raw.listen_https) {
        (Some(t), _) => (t, "listen_tls"),
        (None, Some(h)) => (h, "listen_https"),
        (None, None) => return None,
    };
    let addrs = |c: &mut Checker<'_>, list: &Option<At<Vec<At<String>>>>, port: u16| {
        list.iter()
            .flat_map(|l| l.value.iter())
            .filter_map(|a| socket(c, a, port))
            .collect::<Vec<SocketAddr>>()
    };
    let listen = addrs(c, &raw.listen_tls, 853);
    let listen_https = addrs(c, &raw.listen_https, 443);
    let https = https(c, raw);
    let name = name(c, raw.tls_name.as_ref());
    let file = |c: &mut Checker<'_>, a: &Option<At<String>>, key: &str| match a {
        None => {
            c.error(
                items,
                format!("`{key_name}` needs `tls.{key}` (a PEM file)"),
            );
            None
        }
        Some(a) => Some(base.join(&a.value)),
    };
    let certificate = file(c, &raw.tls_certificate, "certificate");
    let key = file(c, &raw.tls_key, "key");
    let handshake_timeout = match &raw.tls_handshake_timeout {
        None => Duration::from_secs(5),
        Some(a) => match super::settings::duration(&a.value) {
            Some(d) if !d.is_zero() => d,
            _ => {
                c.error(
                    a,
                    format!(
                        "`{}` is not a duration like 1500ms, 5s or 1m (above 0)",
                        a.value
                    ),
                );
                return None;
            }
        },
    };
    let (certificate, key, https) = (certificate?, key?, https?);
    let server = match crate::certs::load(&certificate, &key, &[crate::certs::ALPN_DOT]) {
        Ok(s) => s,
        Err(e) => {
            let at = match e {
                crate::certs::CertError::Key { .. } => raw.tls_key.as_ref(),
                _ => raw.tls_certificate.as_ref(),
            };
            if let Some(at) = at {
                c.error(at, e.to_string());
            }
            return None;
        }
    };
    let not_after = crate::certs::expiry(&certificate);
    if let (Some(at), Some(end)) = (raw.tls_certificate.as_ref(), not_after) {
        let now = jiff::Timestamp::now().as_second();
        let when =
            jiff::Timestamp::from_second(end).map_or_else(|_| end.to_string(), |t| t.to_string());
        if end <= now {
            c.warn(
                at,
                format!("the certificate expired at {when}: clients refuse it"),
            );
        } else if end - now < WARN_BEFORE_SECS {
            c.warn(
                at,
                format!("the certificate expires at {when}, within 14 days: renew it"),
            );
        }
    }
    if listen.is_empty() && listen_https.is_empty() {
        return None;
    }
    let https_server = crate::certs::with_alpn(&server, crate::certs::ALPN_HTTPS);
    let name = name?;
    let designations =
        super::bypass::designations(&listen, &listen_https, name.as_deref(), &https.path);
    Some(Tls {
        designations,
        listen,
        listen_https,
        https,
        name,
        certificate,
        key,
        handshake_timeout,
        server,
        https_server,
        not_after,
    })
}

fn https(c: &mut Checker<'_>, raw: &RawConfig) -> Option<Https> {
    let path = match &raw.https_path {
        None => "/dns-query".to_owned(),
        Some(a) => {
            let p = &a.value;
            let ok = p.starts_with('/')
                && p.len() <= 200
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"?#{}%".contains(&b));
            if !ok {
                c.error(
                    a,
                    format!("`{p}` is not a path like /dns-query (a `/`, no query, `#`, `%`, braces or spaces)"),
                );
                return None;
            }
            p.clone()
        }
    };
    let max_streams = raw
        .https_max_streams
        .as_ref()
        .and_then(|a| u32::try_from(a.value).ok())
        .unwrap_or(100);
    Some(Https { path, max_streams })
}

/// `tls.name`, checked as a host name (it is written into DDR answers).
fn name(c: &mut Checker<'_>, a: Option<&At<String>>) -> Option<Option<String>> {
    let Some(a) = a else {
        return Some(None);
    };
    let n = a.value.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if n.len() > 253 || !n.split('.').all(label_ok) {
        c.error(
            a,
            format!(
                "`{}` is not a host name like dns.home.example (the name in the certificate)",
                a.value
            ),
        );
        return None;
    }
    Some(Some(n))
}
