//! The admin endpoint's access settings (`http.token_file`,
//! `http.read_token_file`, `http.max_allow`). The token files are read by
//! [`Admin::tokens`] when `serve` starts and on every reload (so a new
//! token applies on reload), and by `cutoff check`, which reports a file
//! that is missing, empty or readable by others; other commands never read
//! them (an unprivileged `cutoff status` must still load the config).
//! Outside the query flow; `http` compares the tokens a request presents
//! with [`Token::verify`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::check::Checker;
use super::raw::{At, RawConfig};

/// The longest temporary allow when `http.max_allow` is not written.
pub const DEFAULT_MAX_ALLOW: Duration = Duration::from_secs(24 * 3600);

/// Shortest token accepted: guessing must be hopeless.
pub(super) const MIN_TOKEN_BYTES: usize = 16;

/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// What the admin endpoint lets in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admin {
    /// The write token's file (`http.token_file`); `None`: every write is
    /// refused.
    pub token_file: Option<PathBuf>,
    /// The read token's file (`http.read_token_file`); `None`: reading is
    /// open.
    pub read_token_file: Option<PathBuf>,
    /// The longest temporary allow (`http.max_allow`).
    pub max_allow: Duration,
}

/// The tokens read from an [`Admin`]'s files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every write needs it; `None`: writes are off.
    pub write: Option<Token>,
    /// Reads need it (or the write token); `None`: reading is open.
    pub read: Option<Token>,
}

impl Admin {
    /// Reads and checks both token files.
    pub fn tokens(&self) -> Result<Tokens, TokenFileError> {
        let read = |p: &Option<PathBuf>| p.as_deref().map(read_token).transpose();
        Ok(Tokens {
            write: read(&self.token_file)?,
            read: read(&self.read_token_file)?,
        })
    }
}

/// A bearer token. Kept as its SHA-256 only, so it never shows in a
/// `Debug` print and every comparison is between two 32-byte values.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 32]);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// The token of `text` (as written, without surrounding whitespace).
    pub fn new(text: &str) -> Self {
        Self(Sha256::digest(text.trim().as_bytes()).into())
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// how much of it matches (both sides are hashed to 32 bytes first, so
    /// not even the length leaks).
    pub fn verify(&self, presented: &[u8]) -> bool {
        let p: [u8; 32] = Sha256::digest(presented).into();
        self.0.ct_eq(&p).into()
    }
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read or change it.
    #[error(
        "{path}: mode {mode:o} lets others read or change the token; `chmod 600` (or 640 with the service's group)"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Something is wrong on one of its lines.
    #[error("{path} line {line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What.
        message: String,
    },
}

/// Reads a token file: one line holding the token (at least
/// [`MIN_TOKEN_BYTES`], no spaces), not writable by the group nor readable
/// by others.
pub fn read_token(path: &Path) -> Result<Token, TokenFileError> {
    let meta = std::fs::metadata(path).map_err(|source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            return Err(TokenFileError::Mode {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let _ = meta;
    let text =
        crate::files::read_capped(path, MAX_TOKEN_FILE).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
    let line = |line: usize, message: &str| TokenFileError::Line {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };
    let mut lines = text.lines().enumerate();
    let token = match lines.next() {
        Some((_, l)) if !l.trim().is_empty() => l.trim(),
        _ => return Err(line(1, "empty: the first line must hold the token")),
    };
    if token.len() < MIN_TOKEN_BYTES {
        return Err(line(
            1,
            "the token is shorter than 16 characters (`openssl rand -hex 32` makes a good one)",
        ));
    }
    if token.contains(char::is_whitespace) {
        return Err(line(1, "the token contains a space"));
    }
    if let Some((i, _)) = lines.find(|(_, l)| !l.trim().is_empty()) {
        return Err(line(
            i.saturating_add(1),
            "a second line: the file holds one token only",
        ));
    }
    Ok(Token::new(token))
}

/// Validates the `http` settings beyond its address (the token files are
/// read later, by [`Admin::tokens`]).
pub(super) fn admin(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Admin {
    let mut path = |a: &Option<At<String>>| {
        let a = a.as_ref()?;
        if a.value.trim().is_empty() {
            c.error(a, "needs a file name");
            return None;
        }
        Some(base.join(&a.value))
    };
    let token_file = path(&raw.http_token_file);
    let read_token_file = path(&raw.http_read_token_file);
    let max_allow = match &raw.http_max_allow {
        None => DEFAULT_MAX_ALLOW,
        Some(a) => match super::settings::long_duration(&a.value).filter(|d| !d.is_zero()) {
            Some(d) => d,
            None => {
                c.error(
                    a,
                    format!(
                        "`{}` is not a duration like 30m, 24h or 7d (at most 7d)",
                        a.value
                    ),
                );
                DEFAULT_MAX_ALLOW
            }
        },
    };
    Admin {
        token_file,
        read_token_file,
        max_allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn a_token_matches_itself_and_nothing_else() {
        let f = file("0123456789abcdef0123\n", 0o600);
        let t = read_token(f.path()).unwrap();
        assert!(t.verify(b"0123456789abcdef0123"));
        assert!(!t.verify(b"0123456789abcdef012"));
        assert!(!t.verify(b""));
        assert_eq!(format!("{t:?}"), "Token(…)");
    }

    #[test]
    fn a_world_readable_token_file_is_refused() {
        let f = file("0123456789abcdef0123\n", 0o644);
        let e = read_token(f.path()).unwrap_err().to_string();
        assert!(e.contains("mode 644"), "{e}");
    }

    #[test]
    fn an_empty_short_or_two_line_token_file_names_its_line() {
        let cases = [
            ("\n", "line 1: empty"),
            ("short\n", "line 1: the token is shorter"),
            ("0123456789abcdef0123\n\nmore\n", "line 3: a second line"),
        ];
        for (text, want) in cases {
            let f = file(text, 0o600);
            let e = read_token(f.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
