//! The signed feed of the shipped Kaspersky list (`lists.NAME.feed` on a
//! `builtin: kaspersky` list): a newer catalogue, downloaded with its
//! minisign signature (`URL.minisig`), verified against a public key
//! compiled into the binary, and used only when its `version` is newer than
//! the embedded list's.
//!
//! Outside the query flow, like URL lists: the refresher (the crate's `refresh`)
//! and `cutoff lists update` download it; the copy and its signature are
//! kept under `state_dir` and verified again each time a config load reads
//! them, so a copy altered on disk is never served.

use std::cmp::Ordering;
use std::path::PathBuf;

use minisign_verify::{PublicKey, Signature};

use super::fetch::{self, Fetched};
use super::lastgood::{Meta, Outcome, Rejected, store};
use super::{Catalogue, KASPERSKY_YAML, UrlSource};

/// The minisign public key the project's releases sign the list with
/// (blocklists/README.md, "Signing the feed"); its secret key is never in
/// the repository.
pub const PUBLIC_KEY: &str = "RWRaw3AitiDMgTsJdvI3vSQ/2oxF1xyeBcld5fuMeIFV3XWx4Ca9qS2D";

/// Largest signature file read.
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// A feed: where it is, how it is fetched (the [`UrlSource`] limits), the
/// key it must be signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSource {
    /// The catalogue URL and the download limits; `copy` is the stored
    /// catalogue (`state_dir/lists/NAME.yaml`).
    pub source: UrlSource,
    /// The minisign public key (base64): [`PUBLIC_KEY`] unless the config
    /// names another (`feed_key`, for a feed of one's own).
    pub key: String,
}

impl FeedSource {
    /// The signature's URL: the feed's with `.minisig` appended.
    pub fn signature_url(&self) -> String {
        format!("{}.minisig", self.source.url)
    }

    /// Where the stored copy's signature is kept.
    pub fn signature_copy(&self) -> PathBuf {
        self.source.copy.with_extension("yaml.minisig")
    }
}

/// Compares dotted versions (`2026.12.01`) part by part as numbers;
/// `None` when either is not such a version.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let parts = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse().ok()).collect() };
    Some(parts(a)?.cmp(&parts(b)?))
}

/// Checks `body` against `signature` with the feed's key and reads it as
/// a catalogue.
pub fn verify(feed: &FeedSource, body: &[u8], signature: &[u8]) -> Result<Catalogue, Rejected> {
    let url = feed.source.url.clone();
    let bad = |reason: String| Rejected::Signature {
        url: url.clone(),
        reason,
    };
    let key = PublicKey::from_base64(&feed.key).map_err(|e| bad(format!("public key: {e}")))?;
    let text = std::str::from_utf8(signature).map_err(|_| bad("not a minisign file".into()))?;
    let sig = Signature::decode(text).map_err(|e| bad(format!("signature file: {e}")))?;
    key.verify(body, &sig, false)
        .map_err(|e| bad(format!("does not verify: {e}")))?;
    let text = std::str::from_utf8(body).map_err(|_| bad("the list is not UTF-8".into()))?;
    Catalogue::parse(text, &url).map_err(|e| Rejected::Catalogue {
        url: url.clone(),
        reason: e.to_string(),
    })
}

/// The embedded catalogue's version.
pub fn embedded_version() -> Option<String> {
    Catalogue::parse(KASPERSKY_YAML, "builtin:kaspersky")
        .ok()
        .map(|c| c.version)
}

/// The stored copy, verified again: `Ok(None)` without one, `Err` when it
/// is there but does not verify (the caller warns and uses the embedded list).
pub fn stored(feed: &FeedSource) -> Result<Option<Catalogue>, Rejected> {
    let copy = &feed.source.copy;
    if !copy.is_file() {
        return Ok(None);
    }
    let read = |path: &std::path::Path, max: u64| -> Result<Vec<u8>, Rejected> {
        crate::files::read_capped(path, max)
            .map(String::into_bytes)
            .map_err(|e| Rejected::Signature {
                url: path.display().to_string(),
                reason: e.to_string(),
            })
    };
    let body = read(copy, feed.source.max_bytes)?;
    let sig = read(&feed.signature_copy(), MAX_SIGNATURE_BYTES)?;
    verify(feed, &body, &sig).map(Some)
}

/// The version a new feed must beat: the stored copy's when it verifies
/// and is newer than the embedded list, else the embedded one.
fn running_version(feed: &FeedSource) -> String {
    let embedded = embedded_version().unwrap_or_default();
    match stored(feed) {
        Ok(Some(c)) if compare_versions(&c.version, &embedded) == Some(Ordering::Greater) => {
            c.version
        }
        _ => embedded,
    }
}

/// One download of the feed and its signature: verified, newer only,
/// stored. The running list is never touched; the caller reloads when the
/// outcome changed.
pub async fn update(feed: &FeedSource) -> Outcome {
    let body = match fetch::fetch(&feed.source, None).await {
        Ok(Fetched::Body { bytes, .. }) => bytes,
        Ok(Fetched::NotModified) => return Outcome::Unchanged { entries: 0 },
        Err(e) => return Outcome::Failed(e),
    };
    let mut sig_source = feed.source.clone();
    sig_source.url = feed.signature_url();
    sig_source.max_bytes = MAX_SIGNATURE_BYTES;
    let sig = match fetch::fetch(&sig_source, None).await {
        Ok(Fetched::Body { bytes, .. }) => bytes,
        Ok(Fetched::NotModified) => Vec::new(),
        Err(e) => return Outcome::Failed(e),
    };
    let feed = feed.clone();
    let work = move || {
        let cat = match verify(&feed, &body, &sig) {
            Ok(c) => c,
            Err(r) => return Outcome::Rejected(r),
        };
        let running = running_version(&feed);
        let entries = cat.entries.iter().filter(|e| e.enabled).count();
        match compare_versions(&cat.version, &running) {
            Some(Ordering::Greater) => {}
            Some(Ordering::Equal) => return Outcome::Unchanged { entries },
            _ => {
                return Outcome::Rejected(Rejected::NotNewer {
                    url: feed.source.url.clone(),
                    version: cat.version,
                    running,
                });
            }
        }
        let meta = Meta {
            url: feed.source.url.clone(),
            validators: fetch::Validators::default(),
            checked: jiff::Timestamp::now().as_second(),
            entries,
        };
        // The signature first: a crash between the two leaves a copy that
        // does not verify (ignored), never an unverified one in use.
        if let Err(e) = std::fs::create_dir_all(
            feed.source
                .copy
                .parent()
                .unwrap_or(std::path::Path::new(".")),
        )
        .and_then(|()| std::fs::write(feed.signature_copy(), &sig))
        {
            return Outcome::Store(e);
        }
        match store(&feed.source, &body, &meta) {
            Ok(()) => Outcome::Updated { entries, was: None },
            Err(e) => Outcome::Store(e),
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Outcome::Store(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_part_by_part_as_numbers() {
        assert_eq!(
            compare_versions("2026.12.10", "2026.12.9"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_versions("2026.12.01", "2026.12.1"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_versions("2025.1", "2026.12.01"),
            Some(Ordering::Less)
        );
        assert_eq!(compare_versions("next", "2026.12.01"), None);
    }

    #[test]
    fn the_compiled_in_key_is_a_minisign_public_key() {
        assert!(PublicKey::from_base64(PUBLIC_KEY).is_ok());
    }

    #[test]
    fn the_embedded_list_has_a_dotted_version() {
        let v = embedded_version().unwrap();
        assert!(compare_versions(&v, &v).is_some(), "{v}");
    }
}
