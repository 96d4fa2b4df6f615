//! The certificate pair of the encrypted listeners (DoT): PEM files read
//! into a rustls server configuration; and the roots that cutoff trusts as
//! a TLS client (DoT/DoH upstreams, list downloads).
//!
//! Outside the query flow: `config` loads the pair when it validates a
//! file (so `cutoff check` reports a bad pair with its line), and `server`
//! hands the result to every TLS handshake. A leaf: `upstream` and
//! `blocklist` both build their client configs from [`roots`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN for DNS over TLS (RFC 7858 §3.2, registered as `dot`).
pub const ALPN_DOT: &[u8] = b"dot";

/// The largest certificate or key file read (a long chain is a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// Why a certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("certificate `{path}`: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is unreadable or holds no PEM private key.
    #[error("key `{path}`: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Both read, but rustls refuses them together (the key is not the
    /// certificate's, or its kind is not supported).
    #[error("certificate `{certificate}` and key `{key}` do not form a pair: {reason}")]
    Pair {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// Reads `certificate` (PEM, the leaf first, then its chain) and `key`
/// (PEM, PKCS#8, PKCS#1 or SEC1) into a server configuration offering
/// `alpn`. The key is checked against the leaf.
pub fn load(
    certificate: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let cert_err = |reason: String| CertError::Certificate {
        path: certificate.to_path_buf(),
        reason,
    };
    let text =
        crate::files::read_capped(certificate, MAX_PEM).map_err(|e| cert_err(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in the file".into()));
    }
    let key_err = |reason: String| CertError::Key {
        path: key.to_path_buf(),
        reason,
    };
    let text = crate::files::read_capped(key, MAX_PEM).map_err(|e| key_err(e.to_string()))?;
    let private =
        PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| key_err(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| CertError::Pair {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// When the leaf of `certificate` (PEM) stops being valid, in Unix
/// seconds; `None` when it cannot be read.
pub fn expiry(certificate: &Path) -> Option<i64> {
    let text = crate::files::read_capped(certificate, MAX_PEM).ok()?;
    let leaf = CertificateDer::pem_slice_iter(text.as_bytes())
        .next()?
        .ok()?;
    not_after(&leaf)
}

/// The `notAfter` of an X.509 certificate (RFC 5280 §4.1.2.5), read with
/// a minimal DER walk: Certificate → TBSCertificate → Validity.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // version
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serial, signature algorithm, issuer
    }
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (tag, time, _) = tlv(tlv(validity)?.2)?;
    let text = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    let digits = |s: &str| -> Option<i16> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, rest) = match tag {
        // UTCTime: two-digit years, 1950 to 2049 (RFC 5280 §4.1.2.5.1).
        0x17 => {
            let yy = digits(text.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        0x18 => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| digits(rest.get(i..i + 2)?).and_then(|v| i8::try_from(v).ok());
    let at = jiff::civil::DateTime::new(
        year,
        field(0)?,
        field(2)?,
        field(4)?,
        field(6)?,
        field(8)?,
        0,
    )
    .ok()?;
    Some(jiff::tz::TimeZone::UTC.to_timestamp(at).ok()?.as_second())
}

/// One DER element: its tag, its contents and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(end..)?))
}

/// Why the trusted roots could not be built: the extra CA file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("`upstream_ca` {path}: {reason}")]
pub struct CaError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The trusted roots: the Mozilla roots (webpki-roots) plus the PEM
/// certificates in `ca` (`upstream_ca`): what TLS upstreams and list
/// downloads trust.
pub fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let err = |reason: String| CaError {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no certificate in the file".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn not_after_is_read_from_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["dns.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-04T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_940_889_600));
    }

    #[test]
    fn truncated_or_foreign_bytes_have_no_expiry() {
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
