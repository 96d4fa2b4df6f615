//! `listen_tls` and `tls:` validated: the DoT listen addresses and the
//! certificate pair, loaded here so that `cutoff check` and a reload report
//! a bad pair with its line and change nothing.

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
    /// `tls.certificate`, resolved against the config's folder.
    pub certificate: PathBuf,
    /// `tls.key`, resolved against the config's folder.
    pub key: PathBuf,
    /// `tls.handshake_timeout` (default 5 s).
    pub handshake_timeout: Duration,
    /// The pair as loaded when the config was validated.
    pub server: Arc<rustls::ServerConfig>,
    /// When the certificate expires (Unix seconds), if it could be read.
    pub not_after: Option<i64>,
}

/// A certificate expiring sooner than this is warned about.
const WARN_BEFORE_SECS: i64 = 14 * 86_400;

/// `None` without `listen_tls`; a listener without a pair is an error.
pub(super) fn tls(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Option<Tls> {
    let items = raw.listen_tls.as_ref()?;
    let listen: Vec<SocketAddr> = items
        .value
        .iter()
        .filter_map(|a| socket(c, a, 853))
        .collect();
    let file = |c: &mut Checker<'_>, a: &Option<At<String>>, key: &str| match a {
        None => {
            c.error(
                items,
                format!("`listen_tls` needs `tls.{key}` (a PEM file)"),
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
    let (certificate, key) = (certificate?, key?);
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
    if items.value.is_empty() {
        return None;
    }
    Some(Tls {
        listen,
        certificate,
        key,
        handshake_timeout,
        server,
        not_after,
    })
}
