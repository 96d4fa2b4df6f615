//! File descriptors: how many a config needs, and making sure the process
//! may open them. Checked once by `serve` before it binds anything, since
//! running out later looks like a dead upstream: every uncached query gets
//! SERVFAIL because its upstream socket cannot be created.
//!
//! The need, at most at once: one upstream socket per query waiting for an
//! upstream (`max_inflight`; the upstream socket pools keep no more
//! sockets, idle and in use together, than tries had in use at once: see
//! `upstream/sockets.rs`), one per open DNS TCP connection
//! (`tcp.max_connections`), the admin endpoint's cap
//! ([`crate::http::MAX_CONNECTIONS`]), two listening sockets per `listen`
//! address and one for the admin port, and a fixed allowance for the rest
//! (standard streams, the runtime's epoll and wake-up descriptors, the
//! query log, a config or list file being read by a reload).

#![deny(clippy::arithmetic_side_effects)]

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::Config;

/// Descriptors for everything that does not grow with the limits.
pub const FIXED: u64 = 32;

/// What a config needs, by part, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// `max_inflight`: an upstream socket per query in flight, which also
    /// bounds what the upstream socket pools keep idle.
    pub inflight: u64,
    /// `tcp.max_connections`, once for plain TCP and once more each for
    /// DoT and DoH when they listen.
    pub tcp: u64,
    /// Admin connections.
    pub admin: u64,
    /// Listening sockets.
    pub listeners: u64,
}

impl Need {
    /// What `config` needs.
    pub fn of(config: &Config) -> Self {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        // DoT and DoH listeners each have a connection table of their own.
        let (dot, doh) = config
            .tls
            .as_ref()
            .map_or((0, 0), |t| (t.listen.len(), t.listen_https.len()));
        let tables = [true, dot > 0, doh > 0].iter().filter(|on| **on).count();
        Self {
            inflight: n(config.serve.max_inflight),
            tcp: n(config.serve.tcp_max_connections).saturating_mul(n(tables)),
            admin: n(crate::http::MAX_CONNECTIONS),
            // A UDP socket per worker and a TCP listener on each address,
            // and the DoT and DoH listeners.
            listeners: n(config.listen.len())
                .saturating_mul(n(config.serve.threads()).saturating_add(1))
                .saturating_add(n(dot))
                .saturating_add(n(doh))
                .saturating_add(1),
        }
    }

    /// The total, fixed allowance included.
    pub fn total(&self) -> u64 {
        FIXED
            .saturating_add(self.inflight)
            .saturating_add(self.tcp)
            .saturating_add(self.admin)
            .saturating_add(self.listeners)
    }
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "about {} file descriptors (max_inflight {} upstream sockets, pooled ones included + {} TCP, DoT and DoH connections + {} admin connections + {} listening sockets + {FIXED} others)",
            self.total(),
            self.inflight,
            self.tcp,
            self.admin,
            self.listeners
        )
    }
}

/// What [`ensure`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The soft limit already covers the need.
    Enough {
        /// The soft limit.
        soft: u64,
    },
    /// The soft limit was raised to the hard one.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
}

/// The limit is below the need and cannot be raised.
#[derive(Debug, thiserror::Error)]
#[error(
    "this config needs {need}, but the limit on open files (RLIMIT_NOFILE) is {soft} (hard limit {hard}){why}; \
     raise it (systemd: LimitNOFILE= in the unit; a shell: ulimit -n) or lower max_inflight or tcp.max_connections"
)]
pub struct TooFew {
    /// What the config needs.
    pub need: Need,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// Why raising failed, if it was tried.
    pub why: String,
}

/// Reads `RLIMIT_NOFILE` and, when the soft limit is below `need`, raises
/// it to the hard limit if that covers the need.
pub fn ensure(need: Need) -> Result<Checked, TooFew> {
    // Cannot tell: let it run, as before this check existed.
    let Ok((soft, hard)) = limits() else {
        return Ok(Checked::Enough { soft: u64::MAX });
    };
    decide(need, soft, hard, raise)
}

/// The decision, apart from the system calls (for tests).
fn decide(
    need: Need,
    soft: u64,
    hard: u64,
    raise: impl FnOnce(u64) -> std::io::Result<()>,
) -> Result<Checked, TooFew> {
    let total = need.total();
    if soft >= total {
        return Ok(Checked::Enough { soft });
    }
    let too_few = |why: String| TooFew {
        need,
        soft,
        hard,
        why,
    };
    if hard < total {
        return Err(too_few(String::new()));
    }
    match raise(hard) {
        Ok(()) => Ok(Checked::Raised {
            from: soft,
            to: hard,
        }),
        Err(e) => Err(too_few(format!(", and raising it failed: {e}"))),
    }
}

/// The soft and hard `RLIMIT_NOFILE` (`u64::MAX`: unlimited).
pub fn limits() -> std::io::Result<(u64, u64)> {
    let l = getrlimit(Resource::Nofile);
    Ok((l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX)))
}

fn raise(to: u64) -> std::io::Result<()> {
    let (_, hard) = limits()?;
    let limit = |v: u64| (v != u64::MAX).then_some(v);
    let l = Rlimit {
        current: limit(to),
        maximum: limit(hard),
    };
    setrlimit(Resource::Nofile, l).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default config on one worker (its `threads` is the machine's
    /// CPU count otherwise: one more UDP socket per address and CPU).
    fn default_need() -> Need {
        let mut c = crate::config::load_default().unwrap();
        c.serve.threads = Some(1);
        Need::of(&c)
    }

    #[test]
    fn each_worker_adds_a_udp_socket_on_every_listen_address() {
        let mut c = crate::config::load_default().unwrap();
        c.serve.threads = Some(4);
        assert_eq!(Need::of(&c).listeners, 2 * (4 + 1) + 1);
    }

    #[test]
    fn the_default_config_needs_its_limits_plus_a_fixed_allowance() {
        let n = default_need();
        assert_eq!(
            (n.inflight, n.tcp, n.admin, n.listeners),
            (4096, 256, 64, 5)
        );
        assert_eq!(n.total(), 4096 + 256 + 64 + 5 + FIXED);
        let text = n.to_string();
        assert!(
            text.starts_with("about 4453 file descriptors (max_inflight 4096"),
            "{text}"
        );
    }

    #[test]
    fn a_low_soft_limit_is_raised_when_the_hard_one_covers_the_need() {
        let n = default_need();
        let mut asked = None;
        let r = decide(n, 1024, 524_288, |to| {
            asked = Some(to);
            Ok(())
        });
        assert_eq!(
            r.unwrap(),
            Checked::Raised {
                from: 1024,
                to: 524_288
            }
        );
        assert_eq!(asked, Some(524_288));
        let untouched = decide(n, 8192, 8192, |_| panic!("no raise needed"));
        assert_eq!(untouched.unwrap(), Checked::Enough { soft: 8192 });
    }

    #[test]
    fn a_hard_limit_below_the_need_is_refused_with_what_to_change() {
        let n = default_need();
        let e = decide(n, 4096, 4096, |_| panic!("cannot help"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs about 4453 file descriptors"), "{e}");
        assert!(e.contains("is 4096 (hard limit 4096)"), "{e}");
        assert!(e.contains("LimitNOFILE="), "{e}");
        let e = decide(n, 1024, 65_536, |_| {
            Err(std::io::Error::from_raw_os_error(1))
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("raising it failed"), "{e}");
    }
}
