//! How forwarding fails: per endpoint ([`Failure`]: timeout, refused,
//! unreachable) and per query ([`ForwardError`], whose text becomes the
//! Extended DNS Error of the client's SERVFAIL).

use std::io;
use std::time::Duration;

/// How one endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No answer came within the budget.
    #[error("timed out")]
    TimedOut,
    /// The endpoint refused (ICMP port unreachable, TCP reset).
    #[error("refused the connection")]
    Refused,
    /// No route to it (network or host unreachable).
    #[error("unreachable ({0})")]
    Unreachable(io::Error),
    /// It answered something that cannot be relayed.
    #[error("answered rcode {0} without the question")]
    Unusable(u8),
    /// Any other error (TLS, HTTP, ...).
    #[error("{0}")]
    Other(io::Error),
}

impl Failure {
    pub(super) fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut => Self::TimedOut,
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Self::Refused,
            io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable => Self::Unreachable(e),
            _ => Self::Other(e),
        }
    }

    /// The `kind` field of the warning: `timeout`, `refused`, `unreachable` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TimedOut => "timeout",
            Self::Refused => "refused",
            Self::Unreachable(_) => "unreachable",
            Self::Unusable(_) | Self::Other(_) => "error",
        }
    }
}

/// Why forwarding failed: every endpoint tried, and how it failed.
#[derive(Debug)]
pub struct ForwardError {
    /// Each endpoint tried (its URL form) and its failure.
    pub failures: Vec<(String, Failure)>,
    /// The budget the query had.
    pub budget: Duration,
}

impl ForwardError {
    /// Whether the budget ran out (some endpoint timed out) rather than
    /// every endpoint failing at once.
    pub fn timed_out(&self) -> bool {
        self.failures.is_empty()
            || self
                .failures
                .iter()
                .any(|(_, f)| matches!(f, Failure::TimedOut))
    }
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.failures.is_empty() {
            return f.write_str("no upstreams");
        }
        if self.timed_out() {
            write!(f, "no upstream answered within {:?}: ", self.budget)?;
        } else {
            f.write_str("no upstream could be reached: ")?;
        }
        for (i, (endpoint, failure)) in self.failures.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{endpoint} {failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ForwardError {}
