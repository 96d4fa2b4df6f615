//! `bypass:`: names answered locally so that clients and browsers stay on
//! this resolver (Firefox's DoH canary, Discovery of Designated Resolvers,
//! iCloud Private Relay). Each switch becomes a list and a block rule of its
//! own (`bypass:NAME`), so `explain`, the metrics, the query log and the
//! blocked answer treat these names like any other rule's: decided before
//! any upstream I/O, never forwarded. docs/bypass.md says why each exists.

use std::sync::Arc;

use super::check::Checker;
use super::raw::{At, RawConfig};
use super::{Action, AnswerMode, Network, Rule};
use crate::blocklist::{self, List};
use crate::matcher::Coverage;
use crate::networks::NetworkId;

/// A name (or zone) that lets clients route around the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BypassName {
    /// `use-application-dns.net`: NXDOMAIN tells Firefox not to turn on DoH
    /// by itself.
    FirefoxCanary,
    /// `resolver.arpa` (`_dns.resolver.arpa`, RFC 9462): NODATA says this
    /// resolver designates no encrypted one.
    Ddr,
    /// `mask.icloud.com`, `mask-h2.icloud.com`: NXDOMAIN tells Apple devices
    /// that this network does not allow iCloud Private Relay.
    IcloudPrivateRelay,
}

/// Every bypass name, in config order.
pub const BYPASS: [BypassName; 3] = [
    BypassName::FirefoxCanary,
    BypassName::Ddr,
    BypassName::IcloudPrivateRelay,
];

impl BypassName {
    /// The key under `bypass:`.
    pub fn key(self) -> &'static str {
        match self {
            Self::FirefoxCanary => "firefox_canary",
            Self::Ddr => "ddr",
            Self::IcloudPrivateRelay => "icloud_private_relay",
        }
    }

    /// The name of its list and rule.
    pub fn rule_name(self) -> &'static str {
        match self {
            Self::FirefoxCanary => "bypass:firefox-canary",
            Self::Ddr => "bypass:ddr",
            Self::IcloudPrivateRelay => "bypass:icloud-private-relay",
        }
    }

    /// The names it answers, and how each covers names.
    pub fn names(self) -> &'static [(&'static str, Coverage)] {
        match self {
            Self::FirefoxCanary => &[("use-application-dns.net", Coverage::Suffix)],
            Self::Ddr => &[("resolver.arpa", Coverage::Suffix)],
            Self::IcloudPrivateRelay => &[
                ("mask.icloud.com", Coverage::Exact),
                ("mask-h2.icloud.com", Coverage::Exact),
            ],
        }
    }

    /// The answer the clients look for.
    pub fn answer(self) -> AnswerMode {
        match self {
            Self::FirefoxCanary | Self::IcloudPrivateRelay => AnswerMode::NxDomain,
            Self::Ddr => AnswerMode::NoData,
        }
    }

    /// The switch when the config says nothing.
    fn default_switch(self) -> Switch {
        match self {
            Self::FirefoxCanary | Self::Ddr => Switch::Auto,
            Self::IcloudPrivateRelay => Switch::Off,
        }
    }
}

/// A bypass switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Switch {
    /// On for the networks where a rule blocks (at any instant).
    Auto,
    /// On for every network.
    On,
    /// Off: the name is forwarded like any other.
    Off,
}

impl Switch {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// Reads the switches and appends one list and one rule per switch that is
/// on somewhere. Runs after the rules are validated (`auto` looks at them).
pub(super) fn apply(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    networks: &[Network],
    lists: &mut Vec<Option<Arc<List>>>,
    rules: &mut Vec<Option<Rule>>,
) -> Vec<(BypassName, Switch)> {
    let mut out = Vec::new();
    for name in BYPASS {
        let switch = match raw.bypass.iter().find(|(k, _)| k == name.key()) {
            Some((_, a)) => switch(c, a).unwrap_or(Switch::Off),
            None => name.default_switch(),
        };
        out.push((name, switch));
        let covered = match switch {
            Switch::Off => continue,
            Switch::On => None,
            Switch::Auto => match enforcing(networks.len(), rules) {
                Some(nets) if nets.is_empty() => continue,
                other => other,
            },
        };
        let list = lists.len();
        lists.push(Some(Arc::new(blocklist::synthetic(
            name.rule_name(),
            name.names(),
        ))));
        rules.push(Some(Rule {
            name: name.rule_name().to_owned(),
            networks: covered,
            lists: vec![list],
            categories: None,
            action: Action::Block,
            from: None,
            until: None,
            from_text: None,
            until_text: None,
            before: None,
            after: None,
            answer: Some(name.answer()),
        }));
    }
    out
}

fn switch(c: &mut Checker<'_>, a: &At<String>) -> Option<Switch> {
    match a.value.as_str() {
        "auto" => Some(Switch::Auto),
        "on" | "true" => Some(Switch::On),
        "off" | "false" => Some(Switch::Off),
        other => {
            c.error(a, format!("`{other}` is not one of: auto, on, off"));
            None
        }
    }
}

/// The networks where some rule blocks at some instant; `None` when that is
/// every network.
fn enforcing(networks: usize, rules: &[Option<Rule>]) -> Option<Vec<NetworkId>> {
    let mut on = vec![false; networks];
    for rule in rules.iter().flatten() {
        let blocks = [Some(rule.action), rule.before, rule.after].contains(&Some(Action::Block));
        if !blocks {
            continue;
        }
        match &rule.networks {
            None => on.iter_mut().for_each(|n| *n = true),
            Some(ids) => ids.iter().for_each(|&i| on[i] = true),
        }
    }
    if on.iter().all(|n| *n) {
        return None;
    }
    Some((0..networks).filter(|&i| on[i]).collect())
}
