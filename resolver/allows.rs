//! Temporary allows: an overlay on the policy snapshot that opens a name
//! (and every name below it) for a while, on one network or on every
//! network that permits it (`networks.NAME.overrides`). The admin endpoint
//! adds and removes them (`POST`/`DELETE /api/v1/allow`, `cutoff allow`).
//!
//! In the query flow it is one check in the decide step, right after
//! `Snapshot::decide` and only for a name a rule blocks or logs: one
//! lock-free load of the current set, nothing at all when it is empty. A
//! reload keeps them; a network whose new config forbids overrides stops
//! honouring them at once. They expire on their own (the decide step
//! compares the query's instant; `State::tick` drops expired ones and
//! rewrites the file).
//!
//! They are kept under `state_dir` as JSON lines (`temporary-allows.jsonl`),
//! written through a temporary file and a rename, and read back at start
//! (expired ones dropped). A corrupt file is an error naming its line, and
//! nothing of it is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::matcher::NameBuf;
use crate::policy::{Decision, Snapshot, Verdict};

/// The file under `state_dir`.
pub const FILE: &str = "temporary-allows.jsonl";

/// Most allows held at once (each is checked on a blocked or logged query).
pub const MAX_ALLOWS: usize = 256;

/// The most memory the allows in force take, in bytes (docs/api.md):
/// each [`Allow`] plus its name (at most 253 bytes) and network name (at
/// most 64).
pub const MAX_BYTES: usize =
    MAX_ALLOWS * (std::mem::size_of::<Allow>() + crate::matcher::MAX_NAME_LEN + 64);

/// The rule name the query log, `explain` and the evidence report give an
/// answer a temporary allow let through.
pub const RULE: &str = "temporary-allow";

/// One temporary allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// The name, lowercase without a trailing dot; names below it are
    /// opened too.
    pub name: String,
    /// The network it applies to; `None`: every network that permits
    /// overrides.
    pub network: Option<String>,
    /// When it was made.
    pub since: Timestamp,
    /// When it ends.
    pub until: Timestamp,
}

impl Allow {
    /// Whether it opens `name` on `network` at `now` (from when it was made
    /// until it ends, so `explain --at` an earlier instant is not opened).
    pub fn covers(&self, network: &str, name: &[u8], now: Timestamp) -> bool {
        self.since <= now
            && now < self.until
            && self.network.as_deref().is_none_or(|n| n == network)
            && covers_name(self.name.as_bytes(), name)
    }
}

/// `entry` is `name` or a parent of it, at a label boundary.
fn covers_name(entry: &[u8], name: &[u8]) -> bool {
    match name.strip_suffix(entry) {
        Some([]) => true,
        Some(rest) => rest.ends_with(b"."),
        None => false,
    }
}

/// A duration as the config writes it: `30m`, `24h`, `90s`.
pub fn show(d: &Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Why an allow was refused, or the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    /// Not a DNS name.
    #[error("`{0}` is not a DNS name")]
    NotAName(String),
    /// Zero, or over `http.max_allow`.
    #[error("`for` must be more than 0 and at most {} (`http.max_allow`)", show(.max))]
    Duration {
        /// `http.max_allow`.
        max: Duration,
    },
    /// Not a duration at all.
    #[error("`for`: `{0}` is not a duration like 30m, 2h or 1d")]
    NotADuration(String),
    /// No such network.
    #[error("no network `{0}` in the config")]
    UnknownNetwork(String),
    /// The network forbids overrides.
    #[error("{0}")]
    Forbidden(String),
    /// Too many at once.
    #[error("{MAX_ALLOWS} temporary allows are in force already; remove one first")]
    Full,
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not an allow.
    #[error("{path} line {line}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What.
        message: String,
    },
}

/// The allows in force, shared by the decide step and the admin endpoint.
#[derive(Debug)]
pub struct Allows {
    current: ArcSwap<Vec<Allow>>,
    /// Serialises changes (and their file writes); queries never take it.
    write: Mutex<()>,
    /// The file (`None`: kept in memory only).
    path: Option<PathBuf>,
}

impl Allows {
    /// An empty set kept in `path` (not read).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Vec::new()),
            write: Mutex::new(()),
            path,
        }
    }

    /// The set stored in `state_dir`, expired ones dropped.
    pub fn open(state_dir: &Path, now: Timestamp) -> Result<Self, AllowError> {
        let path = state_dir.join(FILE);
        let list = read(&path)?.into_iter().filter(|a| a.until > now).collect();
        let s = Self::new(Some(path));
        s.current.store(Arc::new(list));
        Ok(s)
    }

    /// The allows in force at `now`, soonest to end first.
    pub fn list(&self, now: Timestamp) -> Vec<Allow> {
        let mut v = self.live(now);
        v.sort_by_key(|a| a.until);
        v
    }

    /// The allows that have not ended at `now`, in the order kept.
    fn live(&self, now: Timestamp) -> Vec<Allow> {
        let current = self.current.load();
        current.iter().filter(|a| a.until > now).cloned().collect()
    }

    /// The allow that opens `name` on network `network` at `now`, if any.
    pub fn find(&self, network: &str, name: &[u8], now: Timestamp) -> Option<Allow> {
        let current = self.current.load();
        current
            .iter()
            .find(|a| a.covers(network, name, now))
            .cloned()
    }

    /// The decide step's hook: whether a temporary allow turns this block
    /// or log decision into an answer. Only names a rule blocks or logs are
    /// looked at, only on networks that permit overrides; an empty set costs
    /// one atomic load.
    pub fn opens(&self, s: &Snapshot, d: &Decision<'_>, name: &[u8], now: Timestamp) -> bool {
        // Most queries are plainly allowed: they never touch the set.
        if !matches!(d.verdict, Verdict::Block | Verdict::Log) {
            return false;
        }
        let current = self.current.load();
        !current.is_empty() && opening(&current, s, d, name, now).is_some()
    }

    /// Adds (or replaces, for the same name and network) an allow of `name`
    /// for `span` from `now`, if the config permits it; stored before it is
    /// in force.
    pub fn add(
        &self,
        c: &Config,
        name: &str,
        network: Option<&str>,
        span: Duration,
        now: Timestamp,
    ) -> Result<Allow, AllowError> {
        let buf = NameBuf::new(name.trim().as_bytes())
            .filter(|b| !b.as_bytes().contains(&b' '))
            .ok_or_else(|| AllowError::NotAName(name.to_owned()))?;
        if span.is_zero() || span > c.admin.max_allow {
            return Err(AllowError::Duration {
                max: c.admin.max_allow,
            });
        }
        permitted(c, network)?;
        let until = jiff::SignedDuration::try_from(span)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .ok_or(AllowError::Duration {
                max: c.admin.max_allow,
            })?;
        let allow = Allow {
            name: String::from_utf8_lossy(buf.as_bytes()).into_owned(),
            network: network.map(str::to_owned),
            since: now,
            until,
        };
        self.change(now, |v| {
            v.retain(|a| !(a.name == allow.name && a.network == allow.network));
            if v.len() >= MAX_ALLOWS {
                return Err(AllowError::Full);
            }
            v.push(allow.clone());
            Ok(())
        })?;
        Ok(allow)
    }

    /// Ends the allows of `name` (on `network`, or on every network when
    /// `None`); how many ended.
    pub fn remove(
        &self,
        name: &str,
        network: Option<&str>,
        now: Timestamp,
    ) -> Result<usize, AllowError> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut removed = 0;
        self.change(now, |v| {
            let before = v.len();
            v.retain(|a| {
                !(a.name == name && network.is_none_or(|n| a.network.as_deref() == Some(n)))
            });
            removed = before.saturating_sub(v.len());
            Ok(())
        })?;
        Ok(removed)
    }

    /// Drops the allows that have ended (rewriting the file when any did);
    /// how many remain.
    pub fn expire(&self, now: Timestamp) -> Result<usize, AllowError> {
        if self.current.load().iter().all(|a| a.until > now) {
            return Ok(self.current.load().len());
        }
        self.change(now, |_| Ok(()))?;
        Ok(self.current.load().len())
    }

    /// Applies `edit` to the unexpired allows, stores the result, then puts
    /// it in force; on any error nothing changes.
    fn change(
        &self,
        now: Timestamp,
        edit: impl FnOnce(&mut Vec<Allow>) -> Result<(), AllowError>,
    ) -> Result<(), AllowError> {
        let _held = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v = self.live(now);
        edit(&mut v)?;
        if let Some(path) = &self.path {
            write(path, &v)?;
        }
        self.current.store(Arc::new(v));
        Ok(())
    }
}

/// The allow of `allows` that turns decision `d` of `name` into an answer:
/// only a block or a log, only on a network that permits overrides. The
/// decide step and `explain` both ask this.
pub fn opening<'a>(
    allows: &'a [Allow],
    s: &Snapshot,
    d: &Decision<'_>,
    name: &[u8],
    now: Timestamp,
) -> Option<&'a Allow> {
    if !matches!(d.verdict, Verdict::Block | Verdict::Log) {
        return None;
    }
    let net = d.network.and_then(|n| s.config.networks.get(n))?;
    if !net.overrides {
        return None;
    }
    allows.iter().find(|a| a.covers(&net.name, name, now))
}

/// Whether `c` lets an allow be made on `network` (every network that
/// permits overrides when `None`), with the reason when not.
pub fn permitted(c: &Config, network: Option<&str>) -> Result<(), AllowError> {
    match network {
        Some(n) => {
            let net = c
                .networks
                .iter()
                .find(|x| x.name == n)
                .ok_or_else(|| AllowError::UnknownNetwork(n.to_owned()))?;
            if net.overrides {
                Ok(())
            } else {
                Err(AllowError::Forbidden(format!(
                    "network `{n}` forbids temporary allows: a rule enforces the cut-off there \
                     (`networks.{n}.overrides: true` in the config would permit them)"
                )))
            }
        }
        None if c.networks.iter().any(|x| x.overrides) => Ok(()),
        None => Err(AllowError::Forbidden(
            "no network permits temporary allows: rules enforce the cut-off on every network \
             (set `networks.NAME.overrides: true` for one)"
                .to_owned(),
        )),
    }
}

/// Reads the file (a missing file is an empty set).
pub fn read(path: &Path) -> Result<Vec<Allow>, AllowError> {
    let text = match crate::files::read_capped(path, 1 << 20) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AllowError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let corrupt = |message: String| AllowError::Corrupt {
            path: path.to_owned(),
            line: i.saturating_add(1),
            message,
        };
        let a: Allow = serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        if NameBuf::new(a.name.as_bytes()).is_none() {
            return Err(corrupt(format!("`{}` is not a DNS name", a.name)));
        }
        if a.network.as_ref().is_some_and(|n| n.len() > 64) {
            return Err(corrupt("a network name longer than 64 bytes".to_owned()));
        }
        if out.len() >= MAX_ALLOWS {
            return Err(corrupt(format!("more than {MAX_ALLOWS} allows")));
        }
        out.push(a);
    }
    Ok(out)
}

fn write(path: &Path, allows: &[Allow]) -> Result<(), AllowError> {
    let io = |source| AllowError::Io {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    for a in allows {
        text.push_str(&serde_json::to_string(a).map_err(|e| io(std::io::Error::other(e)))?);
        text.push('\n');
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests;
