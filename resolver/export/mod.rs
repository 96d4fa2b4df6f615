//! `cutoff export`: what the policy blocks for one network at one instant,
//! written for the resolvers people keep (BIND/Unbound RPZ, Unbound
//! local-zones, dnsmasq, hosts files, plain and adblock lists).
//!
//! Outside the query flow. Each active name entry of the network's lists is
//! decided as `serve` decides it ([`Snapshot::decide_in`], the same rule
//! precedence), then rendered as an owner: the name itself, and `*.name`
//! for what lies below it. Owners that are not blocked but sit under a
//! blocked one (the mail relays under an infrastructure zone, exemptions)
//! are written as pass-through where the format can say so, because every
//! format here, like cutoff, lets the most specific owner win.

mod formats;
pub mod zones;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

pub use formats::{
    Format, RPZ_APEX_A, RPZ_SOA, RPZ_TTL, RpzSoa, render as formats_render, rpz_record,
};

use crate::blocklist::Category;
use crate::config::Action;
use crate::matcher::Coverage;
use crate::policy::{ListMatch, Snapshot, Verdict};

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `--network` names no network.
    #[error("no network named `{name}`; networks: {known}")]
    UnknownNetwork {
        /// The name given.
        name: String,
        /// The config's networks.
        known: String,
    },
    /// `--list` names no list of this network's rules.
    #[error("no list named `{name}` is used by the rules of network `{network}`; lists: {known}")]
    UnknownList {
        /// The name given.
        name: String,
        /// The network.
        network: String,
        /// The lists its rules use.
        known: String,
    },
}

/// What an owner name gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// The blocked answer.
    Block,
    /// Answered normally, although a less specific owner is blocked (or an
    /// `allow` rule says so).
    Pass,
}

/// One owner of the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The name (lowercase, no trailing dot).
    pub name: String,
    /// `true`: the names strictly below `name` (`*.name`); `false`: `name` itself.
    pub below: bool,
    /// What it gets.
    pub effect: Effect,
    /// The rule that decided (shared by its owners: a zone of a large list
    /// holds one copy of each name, not one per owner).
    pub rule: Arc<str>,
    /// The list and its entry, as written.
    pub list: Arc<str>,
    /// The entry's category.
    pub category: Option<Category>,
    /// Sources the list records for the entry.
    pub sources: Vec<String>,
}

/// The owners to write, and the entries no format could express.
#[derive(Debug, Default)]
pub struct Export {
    /// Owners in name order (parents before children), the apex before `*.`.
    pub owners: Vec<Owner>,
    /// Pattern entries (`downloads*.zone`) that block names no owner covers.
    pub patterns: Vec<String>,
    /// The network, the instant and the config version, for the header.
    pub network: String,
    /// The instant decided at.
    pub at: Timestamp,
    /// The config version.
    pub version: String,
    /// The RPZ zone's SOA serial: the instant in seconds for `cutoff
    /// export` (seconds since 1970 fit u32 until 2106, and only grow
    /// between exports); a served zone sets its own (`crate::rpz`).
    pub serial: u32,
}

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The network (default: `default`).
    pub network: Option<String>,
    /// Only these lists (default: every list of the network's rules).
    pub lists: Vec<String>,
}

/// Decides every entry of the selected lists for the network at `at`.
pub fn plan(s: &Snapshot, sel: &Selection, at: Timestamp) -> Result<Export, ExportError> {
    let c = &s.config;
    let net_name = sel.network.as_deref().unwrap_or("default");
    let network = c
        .networks
        .iter()
        .position(|n| n.name == net_name)
        .ok_or_else(|| ExportError::UnknownNetwork {
            name: net_name.to_owned(),
            known: names(c.networks.iter().map(|n| n.name.as_str())),
        })?;
    let used: Vec<usize> = s.lists_of(network).collect();
    for want in &sel.lists {
        if !used.iter().any(|&l| c.lists[l].name == *want) {
            return Err(ExportError::UnknownList {
                name: want.clone(),
                network: net_name.to_owned(),
                known: names(used.iter().map(|&l| c.lists[l].name.as_str())),
            });
        }
    }
    // Owner (name, below) -> its best decision across lists (allow > block > log).
    let mut owners: BTreeMap<(Vec<u8>, bool), (Action, Owner)> = BTreeMap::new();
    let mut patterns = Vec::new();
    let rule_names: Vec<Arc<str>> = c.rules.iter().map(|r| Arc::from(r.name.as_str())).collect();
    for &l in &used {
        let list = &c.lists[l];
        let list_name: Arc<str> = Arc::from(list.name.as_str());
        if !sel.lists.is_empty() && !sel.lists.contains(&list.name) {
            continue;
        }
        for (entry, coverage, payload) in list.set.iter() {
            let category = Category::from_payload(payload);
            let m = ListMatch {
                list: l,
                entry,
                coverage,
                category,
                unclassified: false,
                pattern: None,
            };
            let d = s.decide_in(network, None, at, |_, i| (i == l).then_some(m));
            let (Some((r, _)), verdict) = (d.rule, d.verdict) else {
                continue;
            };
            let action = match verdict {
                Verdict::Block => Action::Block,
                Verdict::Allow => Action::Allow,
                _ => Action::Log,
            };
            let text = String::from_utf8_lossy(entry).into_owned();
            if entry.contains(&b'*') {
                if action == Action::Block {
                    patterns.push(text);
                }
                continue;
            }
            let sources = list
                .catalogue
                .as_ref()
                .and_then(|cat| cat.entry(&text, coverage))
                .map(|e| e.sources.clone())
                .unwrap_or_default();
            let owner = |below| Owner {
                name: text.clone(),
                below,
                effect: Effect::Pass,
                rule: rule_names[r].clone(),
                list: list_name.clone(),
                category,
                sources: sources.clone(),
            };
            let sides: &[bool] = match coverage {
                Coverage::Exact => &[false],
                Coverage::Suffix => &[false, true],
                Coverage::Below => &[true],
            };
            for &below in sides {
                let key = (entry.to_vec(), below);
                let better = owners.get(&key).is_none_or(|(a, _)| action > *a);
                if better {
                    owners.insert(key, (action, owner(below)));
                }
            }
        }
    }
    // Blocked owners, then the rest where a less specific owner is blocked
    // (or an allow rule exempts them): those must pass through.
    let blocked: Vec<(Vec<u8>, bool)> = owners
        .iter()
        .filter(|(_, (a, _))| *a == Action::Block)
        .map(|(k, _)| k.clone())
        .collect();
    // Under a blocked `*.b`: the name is strictly below `b`.
    let covered = |name: &[u8]| {
        blocked.iter().any(|(b, b_below)| {
            *b_below
                && name.len() > b.len()
                && name.ends_with(b)
                && name[name.len() - b.len() - 1] == b'.'
        })
    };
    let mut out: Vec<Owner> = Vec::new();
    for ((name, _), (action, mut owner)) in owners {
        owner.effect = match action {
            Action::Block => Effect::Block,
            Action::Allow => Effect::Pass,
            Action::Log if covered(&name) => Effect::Pass,
            Action::Log => continue,
        };
        out.push(owner);
    }
    out.sort_by_key(order);
    // A pattern under a blocked owner adds nothing; the others are noted.
    patterns.retain(|p| {
        let parent = p.split_once('.').map_or("", |(_, rest)| rest);
        !out.iter().any(|o| {
            o.effect == Effect::Block
                && o.below
                && (parent == o.name || parent.ends_with(&format!(".{}", o.name)))
        })
    });
    Ok(Export {
        owners: out,
        patterns,
        network: net_name.to_owned(),
        at,
        version: c.version.clone(),
        serial: u32::try_from(at.as_second()).unwrap_or(u32::MAX),
    })
}

/// Sort key: by labels from the root, so a zone comes before what is below it.
fn order(o: &Owner) -> (Vec<String>, bool) {
    (o.name.rsplit('.').map(str::to_owned).collect(), o.below)
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_export(at: &str) -> Export {
        let s = Snapshot::new(crate::config::load_default().unwrap());
        plan(&s, &Selection::default(), at.parse().unwrap()).unwrap()
    }

    fn effect(e: &Export, name: &str, below: bool) -> Option<Effect> {
        e.owners
            .iter()
            .find(|o| o.name == name && o.below == below)
            .map(|o| o.effect)
    }

    #[test]
    fn zones_are_blocked_with_their_overrides_passing_through() {
        let e = default_export("2025-01-01T00:00:00Z");
        assert_eq!(effect(&e, "kaspersky-labs.com", true), Some(Effect::Block));
        assert_eq!(effect(&e, "kaspersky-labs.com", false), Some(Effect::Block));
        assert_eq!(effect(&e, "upd.kaspersky.com", true), Some(Effect::Block));
        assert_eq!(
            effect(&e, "s05.upd.kaspersky.com", false),
            Some(Effect::Block)
        );
        assert_eq!(
            effect(&e, "mx12.kaspersky-labs.com", false),
            Some(Effect::Pass)
        );
        assert_eq!(
            effect(&e, "scr.kaspersky-labs.com", true),
            Some(Effect::Pass)
        );
        assert_eq!(
            effect(&e, "opentip.kaspersky.com", false),
            Some(Effect::Pass)
        );
        // Logged and not under a blocked owner: not written at all.
        assert_eq!(effect(&e, "kaspersky.com", true), None);
        assert_eq!(effect(&e, "www.kaspersky.com", false), None);
        // Patterns under the blocked zone add nothing; activation-v* does.
        assert_eq!(e.patterns, ["activation-v*.kaspersky.com"]);
    }

    #[test]
    fn before_the_cutoff_nothing_is_blocked_but_the_bypass_names() {
        let e = default_export("2024-09-01T00:00:00Z");
        let blocked: Vec<&str> = e
            .owners
            .iter()
            .filter(|o| o.effect == Effect::Block)
            .map(|o| o.name.as_str())
            .collect();
        assert!(
            blocked
                .iter()
                .all(|n| n.ends_with("use-application-dns.net") || n.ends_with("resolver.arpa")),
            "{blocked:?}"
        );
    }

    #[test]
    fn unknown_network_and_list_are_errors_naming_the_known_ones() {
        let s = Snapshot::new(crate::config::load_default().unwrap());
        let at = Timestamp::now();
        let err = plan(
            &s,
            &Selection {
                network: Some("staff".into()),
                lists: vec![],
            },
            at,
        )
        .unwrap_err();
        assert!(err.to_string().contains("networks: default"), "{err}");
        let err = plan(
            &s,
            &Selection {
                network: None,
                lists: vec!["nope".into()],
            },
            at,
        )
        .unwrap_err();
        assert!(err.to_string().contains("lists: kaspersky"), "{err}");
    }
}
