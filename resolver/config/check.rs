//! The config checker's leaf: [`Problem`] (one mistake with its line and
//! key path), the [`Checker`] that collects them, and the name, CIDR and
//! address helpers every part of validation shares. It imports nothing from the
//! rest of `config`, so `validate` and the parts it calls (lists, rules,
//! settings, bypass) all depend on it without depending on each other.
//! Outside the query flow: used when a config is checked or loaded.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::raw::At;

/// One problem in a config file: where, which key, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// Key path such as `rules[1].lists[0]` (empty for the whole file).
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(line: Option<u32>, path: &str, message: String) -> Self {
        Self {
            line,
            path: path.to_owned(),
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

pub(crate) struct Checker<'p> {
    pub(crate) problems: &'p mut Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
}

impl Checker<'_> {
    pub(crate) fn error<T>(&mut self, at: &At<T>, message: impl Into<String>) {
        self.problems.push(Problem::new(
            Some(at.line),
            at.path.as_str(),
            message.into(),
        ));
    }

    pub(crate) fn warn<T>(&mut self, at: &At<T>, message: impl Into<String>) {
        self.warnings.push(Problem::new(
            Some(at.line),
            at.path.as_str(),
            message.into(),
        ));
    }
}

pub(crate) fn cidr(c: &mut Checker<'_>, a: &At<String>) -> Option<IpNet> {
    let parsed = a
        .value
        .parse::<IpNet>()
        .ok()
        .or_else(|| a.value.parse::<IpAddr>().ok().map(IpNet::from));
    let Some(n) = parsed else {
        c.error(
            a,
            format!("`{}` is not a CIDR like 10.1.0.0/16 or fd00::/64", a.value),
        );
        return None;
    };
    if n.trunc() != n {
        c.warn(
            a,
            format!("{} has host bits set; it means {}", a.value, n.trunc()),
        );
    }
    Some(canonical(n.trunc()))
}

/// Clients are looked up by their IPv4 address when they come as
/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so such CIDRs are stored as IPv4 too.
fn canonical(n: IpNet) -> IpNet {
    match n {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(n, IpNet::V4),
            None => n,
        },
        _ => n,
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
}

pub(crate) fn bad_name(name: &str) -> String {
    format!(
        "`{name}` is not a usable name: use 1 to 64 letters, digits, `-`, `_` or `.` (it becomes a metric label)"
    )
}

/// A socket address, or a bare IP with `default_port`.
pub(super) fn socket(c: &mut Checker<'_>, a: &At<String>, default_port: u16) -> Option<SocketAddr> {
    if let Ok(s) = a.value.parse::<SocketAddr>() {
        return Some(s);
    }
    let bare = a.value.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    c.error(
        a,
        format!(
            "`{}` is not an address like 127.0.0.1:5533 or [::1]:5533",
            a.value
        ),
    );
    None
}
