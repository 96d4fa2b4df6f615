//! Configuration: YAML → what was written (`raw`) → a validated [`Config`].
//!
//! Sits before everything else: `check`, `explain` and `serve` all start with
//! [`load`], and a reload calls it again off the query path. A `Config` only
//! exists once every key, CIDR, instant, cross-reference and list has been
//! checked, and loading reports **every** problem with its line and key path
//! instead of stopping at the first. Lists are read here too, so a config
//! that validates is one that can serve.

#[macro_use]
mod words;
mod admin;
mod bypass;
mod check;
mod lists;
mod overrides;
mod raw;
mod rpz;
mod rules;
mod settings;
mod tls;
mod upstream;
mod urllist;
mod validate;
mod yaml;
mod yaml_error;

pub use admin::{Admin, DEFAULT_MAX_ALLOW, Token, TokenFileError, Tokens, read_token};
pub use check::Problem;
pub(crate) use settings::long_duration as parse_long_duration;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use jiff::Timestamp;

pub use bypass::{BYPASS, BypassName, Switch};
pub use overrides::Overrides;
pub use rpz::{Rpz, RpzZone};
pub use tls::{Https, Tls};
pub use upstream::{Upstream, UpstreamError, UpstreamReason};

use crate::blocklist::{Category, List};
use crate::networks::NetworkId;

/// The shipped policy, compiled into the binary: used when no `--config`.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{origin}: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Invalid {
        /// The file (or "embedded default").
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
        /// Warnings found on the way, in file order.
        warnings: Vec<Problem>,
    },
}

/// What a blocked name is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMode {
    /// NXDOMAIN with a synthetic SOA, so clients cache the negative answer.
    NxDomain,
    /// NOERROR with no records (and the SOA).
    NoData,
    /// REFUSED.
    Refused,
    /// A → the sinkhole IPv4 address, AAAA → the sinkhole IPv6 address,
    /// other types NODATA.
    Sinkhole,
}

words!(AnswerMode {
    NxDomain => "nxdomain",
    NoData => "nodata",
    Refused => "refused",
    Sinkhole => "sinkhole",
});

/// How blocked names are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// The answer.
    pub answer: AnswerMode,
    /// TTL of synthesised records and of the negative answer, seconds.
    pub ttl: u32,
    /// A record in sinkhole mode.
    pub sinkhole_ipv4: Ipv4Addr,
    /// AAAA record in sinkhole mode.
    pub sinkhole_ipv6: Ipv6Addr,
}

/// Serving limits and timeouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    /// The total time one query may wait for upstreams (retransmits and
    /// failover included).
    pub upstream_timeout: std::time::Duration,
    /// Extra CA certificates (PEM file) trusted for DoT/DoH upstreams.
    pub upstream_ca: Option<PathBuf>,
    /// Queries waiting for upstreams at once.
    pub max_inflight: usize,
    /// `threads`, when set: see [`Serve::threads`].
    pub threads: Option<usize>,
    /// Most answers kept in the cache (`None`: only `cache_max_bytes` bounds it).
    pub cache_size: Option<usize>,
    /// Bytes the cache may be charged (0: no cache).
    pub cache_max_bytes: usize,
    /// How long past their TTL answers may be served stale (zero: never).
    pub cache_stale_for: std::time::Duration,
    /// How long a name is served stale after a failed refresh before the
    /// upstreams are asked again, in the background.
    pub cache_stale_refresh: std::time::Duration,
    /// Longest time an answer is kept, seconds.
    pub cache_max_ttl: u32,
    /// A TCP connection idle this long is closed.
    pub tcp_idle_timeout: std::time::Duration,
    /// Open TCP connections.
    pub tcp_max_connections: usize,
    /// Open TCP connections from one client prefix.
    pub tcp_max_per_client: usize,
    /// Queries per TCP connection.
    pub tcp_max_queries: usize,
    /// Where state kept across restarts lives (`state_dir`).
    pub state_dir: PathBuf,
}

impl Serve {
    /// Runtime workers and UDP receive loops per listen address: `threads`,
    /// or the CPUs this process may run on (its affinity mask and cgroup
    /// quota, `std::thread::available_parallelism`). Read at start-up only.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// Which queries the log records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogEvents {
    /// Every query.
    All,
    /// Only log and block decisions.
    #[default]
    Matched,
}

words!(LogEvents {
    All => "all",
    Matched => "matched",
});

/// How client addresses are written in the query log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientMode {
    /// The address and port.
    #[default]
    Full,
    /// The /24 (IPv4) or /56 (IPv6) the address is in.
    Truncate,
    /// A salted hash of the address.
    Hash,
}

words!(ClientMode {
    Full => "full",
    Truncate => "truncate",
    Hash => "hash",
});

/// The query log's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLogConfig {
    /// A file, `-` for stdout, or `None` for no log.
    pub path: Option<String>,
    /// Which queries are written.
    pub events: LogEvents,
    /// How client addresses are written.
    pub client: ClientMode,
    /// The secret for [`ClientMode::Hash`].
    pub salt: String,
    /// Records buffered before records are dropped.
    pub queue: usize,
    /// A running SHA-256 on each line ([`crate::chain`]).
    pub chain: bool,
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        Self {
            path: None,
            events: LogEvents::Matched,
            client: ClientMode::Full,
            salt: String::new(),
            queue: 10_000,
            chain: false,
        }
    }
}

/// What clients outside the allowed ranges get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A REFUSED answer.
    Refuse,
    /// No answer at all.
    Drop,
}

words!(Denied {
    Refuse => "refuse",
    Drop => "drop",
});

/// Who may use the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Allowed CIDRs.
    pub allow: Vec<IpNet>,
    /// Denied CIDRs (the most specific of allow/deny wins).
    pub deny: Vec<IpNet>,
    /// What denied clients get.
    pub denied: Denied,
}

/// A named set of CIDRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The name (`default` for the built-in catch-all, which is last).
    pub name: String,
    /// Its CIDRs (empty for `default`).
    pub cidrs: Vec<IpNet>,
    /// Whether temporary allows may open names here (`overrides`; by
    /// default not where a rule blocks).
    pub overrides: bool,
}

/// What a rule does to a matching query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Answer normally and record "would have blocked".
    Log,
    /// Answer with the configured blocked answer; never forward.
    Block,
    /// Answer normally; beats `block` and `log` of other rules.
    Allow,
}

words!(Action {
    Block => "block",
    Log => "log",
    Allow => "allow",
});

/// A validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Networks it applies to; `None` means every network.
    pub networks: Option<Vec<NetworkId>>,
    /// Indices into [`Config::lists`].
    pub lists: Vec<usize>,
    /// Categories selected; `None` means every entry of the lists.
    pub categories: Option<Vec<Category>>,
    /// The action from `from` until `until`.
    pub action: Action,
    /// When `action` starts (inclusive).
    pub from: Option<Timestamp>,
    /// When `action` ends (exclusive).
    pub until: Option<Timestamp>,
    /// `from` as written (keeps the admin's offset for display).
    pub from_text: Option<String>,
    /// `until` as written.
    pub until_text: Option<String>,
    /// The action before `from`; `None`: the rule does not apply then.
    pub before: Option<Action>,
    /// The action from `until` on; `None`: the rule does not apply then.
    pub after: Option<Action>,
    /// How this rule's blocks are answered; `None`: `blocking.answer`.
    pub answer: Option<AnswerMode>,
}

impl Rule {
    /// Whether this is one of the rules the `bypass:` switches add (their
    /// names, `bypass:NAME`, cannot be written in a config).
    pub fn is_bypass(&self) -> bool {
        self.name.starts_with("bypass:")
    }
}

impl Config {
    /// The rules written in the file (the `bypass:` rules left out).
    pub fn written_rules(&self) -> usize {
        self.rules.iter().filter(|r| !r.is_bypass()).count()
    }
}

/// A validated configuration, lists loaded. Built only by [`load`],
/// [`load_default`] or [`from_str`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from (a path, or "embedded default").
    pub origin: String,
    /// Short fingerprint of the config text and the list versions.
    pub version: String,
    /// DNS listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers, in order.
    pub upstreams: Vec<Upstream>,
    /// Admin HTTP endpoint.
    pub http: SocketAddr,
    /// Its tokens and the longest temporary allow.
    pub admin: Admin,
    /// Who may use the resolver.
    pub access: Access,
    /// Named networks in file order, then `default`.
    pub networks: Vec<Network>,
    /// Loaded lists, in file order.
    pub lists: Vec<Arc<List>>,
    /// Rules, in file order (ties between equal actions go to the first).
    pub rules: Vec<Rule>,
    /// `forward_only: true`: the file means to have no rules, so a reload
    /// that drops every running rule is allowed.
    pub forward_only: bool,
    /// How blocked names are answered.
    pub blocking: Blocking,
    /// The bypass switches as configured (their rules are in `rules`).
    pub bypass: Vec<(BypassName, Switch)>,
    /// Serving limits and timeouts.
    pub serve: Serve,
    /// The JSON query log.
    pub query_log: QueryLogConfig,
    /// Per-client UDP query limits (`None`: off).
    pub rate_limit: Option<crate::ratelimit::Settings>,
    /// `listen_tls`, `listen_https` and their certificate pair (no
    /// encrypted listener when `None`).
    pub tls: Option<Tls>,
    /// `rpz:`: zones served to secondaries (`None`: no zone).
    pub rpz: Option<Rpz>,
    /// Things that load but look wrong.
    pub warnings: Vec<Problem>,
}

/// The largest config file read: real ones are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads and validates a config file. Relative list paths are taken from
/// the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        crate::files::read_capped(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_str(&text, &path.display().to_string(), base)
}

/// The embedded default config.
pub fn load_default() -> Result<Config, ConfigError> {
    from_str(DEFAULT_YAML, "embedded default", Path::new("."))
}

/// Validates config text; `origin` names it in messages, `base` resolves
/// relative list paths.
pub fn from_str(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems, warnings| ConfigError::Invalid {
        origin: origin.to_owned(),
        problems,
        warnings,
    };
    let root = yaml::parse(text).map_err(|p| invalid(vec![p], Vec::new()))?;
    let mut reader = yaml::Reader::new();
    let raw = raw::read(&root, &mut reader);
    let mut problems = reader.problems;
    let mut warnings = Vec::new();
    let config = validate::validate(raw, base, &mut problems, &mut warnings);
    problems.sort_by_key(|p| p.line.unwrap_or(u32::MAX));
    let Some(mut c) = config.filter(|_| problems.is_empty()) else {
        return Err(invalid(problems, warnings));
    };
    c.origin = origin.to_owned();
    c.version = fingerprint(&c);
    Ok(c)
}

/// Every key path the schema knows (`lists.NAME.path`, `rules[].from`, ...).
pub fn known_keys() -> Vec<String> {
    raw::all_keys()
}

/// FNV-1a over the policy: access, networks, lists (their entries), rules
/// and the blocked answer. Host-specific settings (listen, http, upstreams,
/// limits, query log) are left out, so replicas and hosts that enforce the
/// same policy report the same version; stable across runs and builds.
fn fingerprint(c: &Config) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    // Networks as they were hashed before `overrides` existed, and an
    // `overrides` only where it differs from its default (which the rules
    // decide): a config that does not write it keeps its version.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Network<'a> {
        name: &'a String,
        cidrs: &'a Vec<IpNet>,
    }
    let networks: Vec<Network<'_>> = c
        .networks
        .iter()
        .map(|n| Network {
            name: &n.name,
            cidrs: &n.cidrs,
        })
        .collect();
    eat(format!("{:?}{:?}{:?}{:?}", c.access, networks, c.rules, c.blocking).as_bytes());
    for (id, n) in c.networks.iter().enumerate() {
        if n.overrides == validate::blocks_on(&c.rules, id) {
            eat(format!("overrides {} {}", n.name, n.overrides).as_bytes());
        }
    }
    for l in &c.lists {
        eat(l.name.as_bytes());
        eat(l.version.as_deref().unwrap_or("").as_bytes());
        for (name, coverage, payload) in l.set.iter() {
            eat(name);
            eat(&[coverage as u8, payload]);
        }
        for p in &l.prefixes {
            eat(p.as_bytes());
        }
    }
    format!("{h:016x}")
}
