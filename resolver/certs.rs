//! The certificate pair of the encrypted listeners (DoT): PEM files read
//! into a rustls server configuration.
//!
//! Outside the query flow: `config` loads the pair when it validates a
//! file (so `cutoff check` reports a bad pair with its line), and `server`
//! hands the result to every TLS handshake.

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
