//! `bypass:`: names answered locally so that clients and browsers stay on
//! this resolver (Firefox's DoH canary, Discovery of Designated Resolvers,
//! iCloud Private Relay). Each switch becomes a list and a block rule of its
//! own (`bypass:NAME`), so `explain`, the metrics, the query log and the
//! blocked answer treat these names like any other rule's: decided before
//! any upstream I/O, never forwarded. docs/bypass.md says why each exists.
//!
//! Discovery of Designated Resolvers (RFC 9462) is decided here too: with
//! `listen_tls` or `listen_https`, the `ddr` rule covers every network and
//! `_dns.resolver.arpa` SVCB is answered with cutoff's own encrypted
//! endpoints ([`designations`], [`Config::designation`]); without them,
//! NODATA says there is no encrypted resolver to move to.

use std::sync::Arc;

use super::check::Checker;
use super::raw::{At, RawConfig};
use super::{Action, AnswerMode, Config, Network, Rule};
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
    /// resolver designates no encrypted one; with encrypted listeners,
    /// the SVCB answer names them.
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
    // Own encrypted listeners: DDR names them to every client, whatever
    // the rules block (the answer is cutoff's, not a block of anything).
    let encrypted = [&raw.listen_tls, &raw.listen_https]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.value.is_empty()));
    for name in BYPASS {
        let switch = match raw.bypass.iter().find(|(k, _)| k == name.key()) {
            Some((_, a)) => switch(c, a).unwrap_or(Switch::Off),
            None => name.default_switch(),
        };
        out.push((name, switch));
        let covered = match switch {
            Switch::Off => continue,
            Switch::On => None,
            Switch::Auto if name == BypassName::Ddr && encrypted => None,
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

/// The DDR name answered with SVCB records (RFC 9462 §4).
const DDR_LABELS: [&[u8]; 3] = [b"_dns", b"resolver", b"arpa"];

/// SvcParamKeys (RFC 9460 §14.3.2, RFC 9461 §5).
const ALPN: u16 = 1;
const PORT: u16 = 3;
const IPV4HINT: u16 = 4;
const IPV6HINT: u16 = 6;
const DOHPATH: u16 = 7;

/// The SVCB RDATA of each encrypted endpoint, DoT first (priority 1, 2,
/// ...): one per distinct port, with `alpn`, `port`, the listen addresses
/// as hints (0.0.0.0 and `::` are no address a client can use, so they are
/// left out) and, for DoH, `dohpath` (RFC 9461 §5). `name` is the target
/// (the certificate's name); `None` writes `.`, the owner itself.
pub(super) fn designations(
    dot: &[std::net::SocketAddr],
    doh: &[std::net::SocketAddr],
    name: Option<&str>,
    path: &str,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let endpoints = [
        (b"dot".as_slice(), dot, None),
        (b"h2".as_slice(), doh, Some(path)),
    ];
    for (alpn, addrs, dohpath) in endpoints {
        let mut ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
        ports.dedup();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            let on_port = || {
                addrs
                    .iter()
                    .filter(move |a| a.port() == port)
                    .map(|a| a.ip())
            };
            let v4: Vec<u8> = on_port()
                .filter_map(|ip| match ip {
                    std::net::IpAddr::V4(v) if !v.is_unspecified() => Some(v.octets()),
                    _ => None,
                })
                .flatten()
                .collect();
            let v6: Vec<u8> = on_port()
                .filter_map(|ip| match ip {
                    std::net::IpAddr::V6(v) if !v.is_unspecified() => Some(v.octets()),
                    _ => None,
                })
                .flatten()
                .collect();
            let priority = u16::try_from(out.len().saturating_add(1)).unwrap_or(u16::MAX);
            let mut rdata = priority.to_be_bytes().to_vec();
            for label in name.iter().flat_map(|n| n.split('.')) {
                rdata.push(u8::try_from(label.len()).unwrap_or(0));
                rdata.extend_from_slice(label.as_bytes());
            }
            rdata.push(0);
            let mut alpn_value = vec![u8::try_from(alpn.len()).unwrap_or(0)];
            alpn_value.extend_from_slice(alpn);
            param(&mut rdata, ALPN, &alpn_value);
            param(&mut rdata, PORT, &port.to_be_bytes());
            if !v4.is_empty() {
                param(&mut rdata, IPV4HINT, &v4);
            }
            if !v6.is_empty() {
                param(&mut rdata, IPV6HINT, &v6);
            }
            if let Some(p) = dohpath {
                param(&mut rdata, DOHPATH, format!("{p}{{?dns}}").as_bytes());
            }
            out.push(rdata);
        }
    }
    out
}

/// One SvcParam: key, length, value (keys are written in increasing order).
fn param(rdata: &mut Vec<u8>, key: u16, value: &[u8]) {
    rdata.extend_from_slice(&key.to_be_bytes());
    rdata.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_be_bytes());
    rdata.extend_from_slice(value);
}

impl Config {
    /// The SVCB records that answer `q` when rule `rule` blocked it: only
    /// for the `ddr` rule, a `_dns.resolver.arpa` SVCB (type 64) question
    /// and encrypted listeners. `None`: the rule's usual (NODATA) answer.
    pub fn designation(&self, rule: usize, q: &crate::query::Question<'_>) -> Option<&[Vec<u8>]> {
        let is_ddr = self
            .rules
            .get(rule)
            .is_some_and(|r| r.name == BypassName::Ddr.rule_name());
        let records = self.tls.as_ref().map(|t| t.designations.as_slice())?;
        let named = q.labels().count() == DDR_LABELS.len()
            && q.labels()
                .zip(DDR_LABELS)
                .all(|(l, want)| l.eq_ignore_ascii_case(want));
        (is_ddr && q.qtype == 64 && named && !records.is_empty()).then_some(records)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn designations_leave_out_unspecified_addresses_and_group_by_port() {
        let dot = ["0.0.0.0:853".parse().unwrap(), "[::]:853".parse().unwrap()];
        let doh = [
            "192.0.2.1:443".parse().unwrap(),
            "[2001:db8::1]:443".parse().unwrap(),
            "192.0.2.1:8443".parse().unwrap(),
        ];
        let r = designations(&dot, &doh, Some("dns.test"), "/q");
        assert_eq!(r.len(), 3);
        // priority 1, dns.test, alpn=dot, port=853, and no hints at all.
        let mut want = vec![0, 1, 3, b'd', b'n', b's', 4, b't', b'e', b's', b't', 0];
        want.extend_from_slice(&[0, 1, 0, 4, 3, b'd', b'o', b't', 0, 3, 0, 2, 0x03, 0x55]);
        assert_eq!(r[0], want);
        // DoH on 443: both hints and the dohpath template.
        let tail = b"\x00\x07\x00\x08/q{?dns}";
        assert!(r[1].ends_with(tail), "{:?}", r[1]);
        assert!(r[1].windows(8).any(|w| w == [0, 4, 0, 4, 192, 0, 2, 1]));
        assert!(r[1].windows(4).any(|w| w == [0, 6, 0, 16]));
        assert_eq!(r[2][..2], [0, 3]);
        // Without `tls.name` the target is the root: `.`, the owner itself.
        assert_eq!(designations(&dot, &[], None, "/q")[0][..3], [0, 1, 0]);
    }
}
