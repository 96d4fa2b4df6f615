//! Last-good copies of URL lists: `state_dir/lists/NAME.list` and its
//! validators in `NAME.meta.json`. One refresh = fetch ([`super::fetch`]),
//! check the body, store it; the reload that follows reads the copy like
//! any list file, so a restart while offline starts from it.
//!
//! Outside the query flow. A body is stored only when it passes every
//! check, and the copy is replaced with a rename, so a failed or
//! interrupted refresh leaves the previous copy (and the running list).

use std::io;
use std::path::PathBuf;

use super::fetch::{self, FetchError, Fetched, Validators};
use super::{UrlSource, read_lines};
use crate::matcher::Coverage;

/// A body is refused when more than this share of its non-comment lines
/// is bad (an error page, a wrong format): half.
pub const MAX_BAD_SHARE: f64 = 0.5;

/// What is known about the stored copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// The URL it was fetched from (validators are sent only to it).
    pub url: String,
    /// Validators of that response.
    #[serde(flatten)]
    pub validators: Validators,
    /// Unix time of the last successful fetch (200 or 304).
    pub checked: i64,
    /// Entries in the copy.
    pub entries: usize,
}

/// Why a fetched body was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// An HTML page (a captive portal, an error page) instead of a list.
    #[error("{url}: the body is an HTML page, not a list")]
    Html {
        /// The URL.
        url: String,
    },
    /// Not one entry.
    #[error("{url}: the body has no entries")]
    Empty {
        /// The URL.
        url: String,
    },
    /// Mostly bad lines.
    #[error(
        "{url}: {bad} of {lines} lines are not list entries (first: line {first_line}: {first}): is it a list?"
    )]
    MostlyBad {
        /// The URL.
        url: String,
        /// Bad lines.
        bad: usize,
        /// Bad and good lines.
        lines: usize,
        /// The first bad line's number.
        first_line: usize,
        /// What is wrong with it.
        first: String,
    },
    /// A feed whose signature is missing, malformed or does not verify
    /// against the key (a tampered body ends here).
    #[error("{url}: bad signature: {reason}")]
    Signature {
        /// The URL (or the stored copy).
        url: String,
        /// Why.
        reason: String,
    },
    /// A signed feed that is not a valid catalogue.
    #[error("{url}: not a list catalogue: {reason}")]
    Catalogue {
        /// The URL.
        url: String,
        /// What is wrong, with its line.
        reason: String,
    },
    /// A signed feed no newer than the list in use.
    #[error("{url}: version {version} is not newer than {running}, the version in use")]
    NotNewer {
        /// The URL.
        url: String,
        /// The feed's version.
        version: String,
        /// The version in use.
        running: String,
    },
    /// More entries than `max_lines`.
    #[error("{url}: more than {limit} entries (`max_lines`)")]
    TooManyLines {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// What one refresh did.
#[derive(Debug)]
pub enum Outcome {
    /// A new body was stored.
    Updated {
        /// Entries now.
        entries: usize,
        /// Entries in the copy it replaced (`None`: there was none).
        was: Option<usize>,
    },
    /// 304, or the same body again.
    Unchanged {
        /// Entries in the copy.
        entries: usize,
    },
    /// The fetch failed; the copy is kept.
    Failed(FetchError),
    /// The body failed a check; the copy is kept.
    Rejected(Rejected),
    /// The body was good but could not be written.
    Store(io::Error),
}

impl Outcome {
    /// The `result` label of `cutoff_list_refresh_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Updated { .. } => "updated",
            Self::Unchanged { .. } => "unchanged",
            Self::Failed(_) => "failed",
            Self::Rejected(_) => "rejected",
            Self::Store(_) => "store_failed",
        }
    }

    /// Whether the copy changed (a reload should follow).
    pub fn changed(&self) -> bool {
        matches!(self, Self::Updated { .. })
    }

    /// Whether the list is current (the last-success time moves).
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Updated { .. } | Self::Unchanged { .. })
    }
}

/// Every value of [`Outcome::label`].
pub const RESULTS: &[&str] = &["updated", "unchanged", "failed", "rejected", "store_failed"];

fn meta_path(source: &UrlSource) -> PathBuf {
    source.copy.with_extension("meta.json")
}

/// The stored copy's metadata, when there is one.
pub fn meta(source: &UrlSource) -> Option<Meta> {
    let text = crate::files::read_capped(&meta_path(source), 64 << 10).ok()?;
    serde_json::from_str(&text).ok()
}

/// Checks a body as a line list: entries counted, HTML and mostly-bad
/// bodies refused. Returns the number of entries.
pub fn check(source: &UrlSource, body: &[u8]) -> Result<usize, Rejected> {
    let url = source.url.clone();
    let head = &body[..body.len().min(1024)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let start = head.trim_start();
    if start.starts_with("<!doctype html") || start.starts_with("<html") || head.contains("<html") {
        return Err(Rejected::Html { url });
    }
    let mut entries = 0usize;
    // Reading from memory cannot fail.
    let report = read_lines(body, Coverage::Suffix, |_, _| {
        entries = entries.saturating_add(1);
    })
    .unwrap_or_default();
    if entries > source.max_lines {
        return Err(Rejected::TooManyLines {
            url,
            limit: source.max_lines,
        });
    }
    let lines = entries.saturating_add(report.count);
    if report.count > 0 && report.count as f64 > lines as f64 * MAX_BAD_SHARE {
        let (first_line, first) = report
            .first
            .first()
            .map_or((0, String::new()), |p| (p.line, p.reason.clone()));
        return Err(Rejected::MostlyBad {
            url,
            bad: report.count,
            lines,
            first_line,
            first,
        });
    }
    if entries == 0 {
        return Err(Rejected::Empty { url });
    }
    Ok(entries)
}

/// Writes `body` as the copy and `meta` beside it, each through a
/// temporary file and a rename: a crash leaves the old copy or the new one.
pub fn store(source: &UrlSource, body: &[u8], meta: &Meta) -> io::Result<()> {
    if let Some(dir) = source.copy.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    replace(&source.copy, body)?;
    replace(&meta_path(source), &json)
}

fn replace(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// One refresh: fetch (conditionally on the stored validators), check,
/// store. Never touches the running policy; the caller reloads when the
/// outcome [`changed`](Outcome::changed).
pub async fn update(source: &UrlSource) -> Outcome {
    let old = meta(source).filter(|m| m.url == source.url && source.copy.is_file());
    let known = old.as_ref().map(|m| &m.validators);
    let fetched = match fetch::fetch(source, known).await {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let (bytes, validators) = match fetched {
        Fetched::NotModified => {
            let Some(mut m) = old else {
                // A 304 to an unconditional GET: nothing to keep.
                return Outcome::Failed(FetchError::Status {
                    url: source.url.clone(),
                    status: 304,
                });
            };
            m.checked = now();
            let entries = m.entries;
            return match store_meta(source, &m) {
                Ok(()) => Outcome::Unchanged { entries },
                Err(e) => Outcome::Store(e),
            };
        }
        Fetched::Body { bytes, validators } => (bytes, validators),
    };
    let source = source.clone();
    // Counting a million lines and writing them is blocking work: off
    // the runtime's worker threads.
    let work = move || {
        let entries = match check(&source, &bytes) {
            Ok(n) => n,
            Err(r) => return Outcome::Rejected(r),
        };
        let same = same_content(&source.copy, &bytes);
        let meta = Meta {
            url: source.url.clone(),
            validators,
            checked: now(),
            entries,
        };
        let was = old.map(|m| m.entries);
        let stored = if same {
            store_meta(&source, &meta)
        } else {
            store(&source, &bytes, &meta)
        };
        match stored {
            Err(e) => Outcome::Store(e),
            Ok(()) if same => Outcome::Unchanged { entries },
            Ok(()) => Outcome::Updated { entries, was },
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Outcome::Store(io::Error::other(e)))
}

/// Whether the file holds exactly `bytes`, read in small pieces (the old
/// copy is never loaded whole beside the new body).
fn same_content(path: &std::path::Path, bytes: &[u8]) -> bool {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != u64::try_from(bytes.len()).ok() {
        return false;
    }
    let mut buf = [0u8; 64 << 10];
    let mut rest = bytes;
    while !rest.is_empty() {
        let Ok(n) = file.read(&mut buf) else {
            return false;
        };
        if n == 0 || rest.get(..n) != buf.get(..n) {
            return false;
        }
        rest = &rest[n..];
    }
    true
}

pub(crate) fn store_meta(source: &UrlSource, meta: &Meta) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    replace(&meta_path(source), &json)
}
