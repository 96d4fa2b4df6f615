//! The immutable policy [`Snapshot`] and [`Snapshot::decide`]: for a client
//! address, a query name and an instant, allow, log, block or refuse, and why.
//!
//! Sits in the middle of the query flow, after the server has decoded the
//! packet and before any upstream I/O: a blocked name never leaves the box.
//! `cutoff explain` calls the same `decide`, so what it prints is what
//! `serve` does. Nothing here allocates per decision.
//!
//! Semantics (docs/configuration.md has the long form):
//! - a client outside `access` is refused;
//! - the client's network is the most specific one holding its address,
//!   else `default`;
//! - in each list the most specific entry covering the name decides its
//!   category; a rule applies when it covers the network, selects that list
//!   and category, and has an action at this instant (`before` / `action` /
//!   `after` around `from` and `until`);
//! - of the rules that apply, `allow` beats `block` beats `log`; between equal
//!   actions the rule written first wins.

use std::cmp::Reverse;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use jiff::Timestamp;

use crate::blocklist::{Category, List};
use crate::config::{Action, Config, Rule};
use crate::matcher::Coverage;
use crate::networks::{AccessList, Clients, NetworkId, Networks};

/// What happens to a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The client may not use the resolver.
    Refuse,
    /// Forward; no rule wants more.
    Allow,
    /// Forward, and record that a rule would have blocked or watches it.
    Log,
    /// Answer locally with the blocked answer.
    Block,
}

impl Verdict {
    /// The word used in output, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Allow => "allow",
            Self::Log => "log",
            Self::Block => "block",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule stands at an instant, relative to its `from` and `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The rule has no dates.
    Always,
    /// Earlier than `from`: the `before` action applies.
    Before,
    /// From `from` (inclusive) until `until` (exclusive): `action` applies.
    Active,
    /// At or after `until`: the `after` action applies.
    After,
}

impl Phase {
    /// The word used in output, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Before => "before",
            Self::Active => "active",
            Self::After => "after",
        }
    }
}

/// The action of `rule` at `now` (none: the rule does not apply then).
pub fn rule_at(rule: &Rule, now: Timestamp) -> (Option<Action>, Phase) {
    if rule.from.is_none() && rule.until.is_none() {
        return (Some(rule.action), Phase::Always);
    }
    if rule.from.is_some_and(|from| now < from) {
        return (rule.before, Phase::Before);
    }
    if rule.until.is_some_and(|until| now >= until) {
        return (rule.after, Phase::After);
    }
    (Some(rule.action), Phase::Active)
}

/// A list entry that covers the query name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListMatch<'q> {
    /// Index into the config's lists.
    pub list: usize,
    /// The entry (a suffix of the query name).
    pub entry: &'q [u8],
    /// How the entry covers names.
    pub coverage: Coverage,
    /// The entry's category.
    pub category: Option<Category>,
    /// A zone-wide entry decided a name that no more specific entry names
    /// (discovery: a Kaspersky name nobody has classified yet).
    pub unclassified: bool,
    /// The pattern that matched, when the entry is one (see `List::pattern`).
    pub pattern: Option<u16>,
}

/// The outcome of [`Snapshot::decide`], with its reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'q> {
    /// What happens.
    pub verdict: Verdict,
    /// The client's network (`None` when refused).
    pub network: Option<NetworkId>,
    /// The CIDR that put the client there (`None` for `default`).
    pub cidr: Option<IpNet>,
    /// The rule that decided, and its phase.
    pub rule: Option<(usize, Phase)>,
    /// The entry the rule matched; without a rule, the first entry that
    /// covered the name in a list of this network's rules (for `explain`).
    pub matched: Option<ListMatch<'q>>,
}

/// For one network: each list its rules use, with those rules in file order.
#[derive(Clone, Debug, Default)]
struct Plan {
    by_list: Vec<(usize, Vec<usize>)>,
}

/// Everything a query needs, built once per (re)load and never changed:
/// reloads build a new one and swap it in whole.
#[derive(Debug)]
pub struct Snapshot {
    /// The validated config it was built from.
    pub config: Arc<Config>,
    clients: Clients,
    plans: Vec<Plan>,
}

impl Snapshot {
    /// Compiles a validated config.
    pub fn new(config: Config) -> Self {
        let default = config.networks.len() - 1;
        let networks = Networks::new(
            config
                .networks
                .iter()
                .enumerate()
                .map(|(i, n)| (i, n.cidrs.as_slice())),
            default,
        );
        let plans = (0..config.networks.len())
            .map(|net| {
                let mut plan = Plan::default();
                for (r, rule) in config.rules.iter().enumerate() {
                    if rule.networks.as_ref().is_some_and(|ns| !ns.contains(&net)) {
                        continue;
                    }
                    for &l in &rule.lists {
                        match plan.by_list.iter_mut().find(|(list, _)| *list == l) {
                            Some((_, rules)) => rules.push(r),
                            None => plan.by_list.push((l, vec![r])),
                        }
                    }
                }
                plan
            })
            .collect();
        let access = AccessList::new(&config.access.allow, &config.access.deny);
        Self {
            clients: Clients::new(&access, &networks),
            plans,
            config: Arc::new(config),
        }
    }

    /// The decision for `client` asking for `name` at `now`. `name` must be
    /// normalised (lowercase, no trailing dot: see `matcher::NameBuf`).
    pub fn decide<'q>(&self, client: IpAddr, name: &'q [u8], now: Timestamp) -> Decision<'q> {
        self.decide_with(client, now, |list, index| {
            let found = list.lookup(name)?;
            Some(ListMatch {
                list: index,
                entry: found.hit.entry,
                coverage: found.hit.coverage,
                category: found.category,
                unclassified: found.unclassified,
                pattern: found.hit.pattern,
            })
        })
    }

    /// The decision for an address in an upstream's answer (response-IP
    /// rules): rules whose lists hold prefixes apply when the address is in
    /// one; the matched entry is the prefix as written. Clients are assumed
    /// allowed (their query was).
    pub fn decide_address(&self, client: IpAddr, address: IpAddr, now: Timestamp) -> Decision<'_> {
        self.decide_with(client, now, |list, index| {
            let prefix = list.lookup_address(address)?;
            Some(ListMatch {
                list: index,
                entry: prefix.as_bytes(),
                coverage: Coverage::Suffix,
                category: None,
                unclassified: false,
                pattern: None,
            })
        })
    }

    /// The one place the precedence lives: for the client's network, each
    /// list its rules use is asked `lookup`; of the rules that then apply,
    /// allow > block > log, and the rule written first wins a tie.
    fn decide_with<'s, 'q>(
        &'s self,
        client: IpAddr,
        now: Timestamp,
        lookup: impl Fn(&'s List, usize) -> Option<ListMatch<'q>>,
    ) -> Decision<'q> {
        let Some((network, cidr)) = self.clients.lookup(client) else {
            return Decision {
                verdict: Verdict::Refuse,
                network: None,
                cidr: None,
                rule: None,
                matched: None,
            };
        };
        self.decide_in(network, cidr, now, lookup)
    }

    /// The decision for a client of `network` (found by its address, or
    /// named by `cutoff export`), with the lists asked through `lookup`.
    pub fn decide_in<'s, 'q>(
        &'s self,
        network: NetworkId,
        cidr: Option<IpNet>,
        now: Timestamp,
        lookup: impl Fn(&'s List, usize) -> Option<ListMatch<'q>>,
    ) -> Decision<'q> {
        let mut best: Option<(Action, usize, Phase, ListMatch<'q>)> = None;
        let mut first: Option<ListMatch<'q>> = None;
        for (list, rules) in &self.plans[network].by_list {
            let Some(m) = lookup(&self.config.lists[*list], *list) else {
                continue;
            };
            let category = m.category;
            first.get_or_insert(m);
            for &r in rules {
                let rule = &self.config.rules[r];
                if let Some(cats) = &rule.categories
                    && !category.is_some_and(|c| cats.contains(&c))
                {
                    continue;
                }
                let (Some(action), phase) = rule_at(rule, now) else {
                    continue;
                };
                if best
                    .as_ref()
                    .is_none_or(|b| (action, Reverse(r)) > (b.0, Reverse(b.1)))
                {
                    best = Some((action, r, phase, m));
                }
            }
        }
        match best {
            Some((action, r, phase, m)) => Decision {
                verdict: match action {
                    Action::Allow => Verdict::Allow,
                    Action::Log => Verdict::Log,
                    Action::Block => Verdict::Block,
                },
                network: Some(network),
                cidr,
                rule: Some((r, phase)),
                matched: Some(m),
            },
            None => Decision {
                verdict: Verdict::Allow,
                network: Some(network),
                cidr,
                rule: None,
                matched: first,
            },
        }
    }

    /// How a blocked decision is answered: the deciding rule's `answer`,
    /// else `blocking.answer` (the bypass rules answer as clients expect).
    pub fn blocking_for(&self, d: &Decision<'_>) -> crate::config::Blocking {
        let mut blocking = self.config.blocking;
        if let Some(mode) = d.rule.and_then(|(r, _)| self.config.rules[r].answer) {
            blocking.answer = mode;
        }
        blocking
    }

    /// The lists that the rules of `network` select, in rule order.
    pub fn lists_of(&self, network: NetworkId) -> impl Iterator<Item = usize> + '_ {
        self.plans
            .get(network)
            .into_iter()
            .flat_map(|p| p.by_list.iter().map(|(list, _)| *list))
    }

    /// Whether any list holds prefixes (so answers need address checks).
    pub fn has_address_lists(&self) -> bool {
        self.config.lists.iter().any(|l| !l.prefixes.is_empty())
    }

    /// The name of a network.
    pub fn network_name(&self, id: NetworkId) -> &str {
        &self.config.networks[id].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::NameBuf;

    fn snapshot(yaml: &str) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("extra.txt"),
            "blocked.example\nexempt.blocked.example\n",
        )
        .unwrap();
        let config =
            crate::config::from_str(yaml, "test", dir.path()).unwrap_or_else(|e| match e {
                crate::config::ConfigError::Invalid { problems, .. } => panic!("{problems:#?}"),
                other => panic!("{other}"),
            });
        Snapshot::new(config)
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn verdict(s: &Snapshot, client: &str, name: &str, now: &str) -> Verdict {
        let buf = NameBuf::new(name.as_bytes()).unwrap();
        s.decide(client.parse().unwrap(), buf.as_bytes(), at(now))
            .verdict
    }

    const CUTOFF: &str = "2024-09-29T04:00:00Z";

    fn default_policy() -> Snapshot {
        Snapshot::new(crate::config::load_default().unwrap())
    }

    #[test]
    fn update_host_is_logged_one_nanosecond_before_the_cutoff() {
        let s = default_policy();
        let before = "2024-09-29T03:59:59.999999999Z";
        assert_eq!(
            verdict(&s, "127.0.0.1", "s05.upd.kaspersky.com", before),
            Verdict::Log
        );
        let buf = NameBuf::new(b"s05.upd.kaspersky.com").unwrap();
        let d = s.decide("127.0.0.1".parse().unwrap(), buf.as_bytes(), at(before));
        assert_eq!(d.rule.map(|(_, p)| p), Some(Phase::Before));
    }

    #[test]
    fn update_host_is_blocked_at_the_cutoff_instant() {
        let s = default_policy();
        assert_eq!(
            verdict(&s, "127.0.0.1", "s05.upd.kaspersky.com", CUTOFF),
            Verdict::Block
        );
        assert_eq!(
            verdict(&s, "10.1.2.3", "dnl-42.geo.kaspersky.com", CUTOFF),
            Verdict::Block
        );
        assert_eq!(
            verdict(&s, "10.1.2.3", "ksn-file-geo.kaspersky-labs.com", CUTOFF),
            Verdict::Block
        );
        assert_eq!(
            verdict(&s, "10.1.2.3", "activation-v2.kaspersky.com", CUTOFF),
            Verdict::Block
        );
    }

    #[test]
    fn exempt_threat_intelligence_hosts_are_allowed_on_every_network() {
        let s = snapshot(
            "networks:\n  lab: [10.9.0.0/16]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: exempt, lists: [k], categories: [exempt], action: allow}\n  - {name: strict, lists: [k], action: block}\n",
        );
        for name in [
            "opentip.kaspersky.com",
            "tip.kaspersky.com",
            "api.tip.kaspersky.com",
            "taxii.tip.kaspersky.com",
            "wlinfo.kaspersky.com",
            "k-asap.com",
            "www.k-asap.com",
        ] {
            for client in ["10.9.1.1", "192.168.1.9"] {
                assert_eq!(verdict(&s, client, name, CUTOFF), Verdict::Allow, "{name}");
            }
        }
        assert_eq!(
            verdict(&s, "10.9.1.1", "www.kaspersky.com", CUTOFF),
            Verdict::Block
        );
        let d = default_policy();
        for name in ["opentip.kaspersky.com", "taxii.tip.kaspersky.com"] {
            assert_eq!(
                verdict(&d, "10.1.1.1", name, "2026-01-01T00:00:00Z"),
                Verdict::Allow,
                "{name}"
            );
        }
    }

    #[test]
    fn migration_web_and_brand_hosts_are_only_logged() {
        let s = default_policy();
        for name in [
            "ultravpn.com",
            "www.ultrasecureav.com",
            "www.kaspersky.com",
            "support.kaspersky.com",
            "support.kaspersky.ru",
            "www.securelist.com",
            "mx12.kaspersky-labs.com",
            "gc.kis.v2.scr.kaspersky-labs.com",
            "kaspersky.co.uk",
        ] {
            assert_eq!(
                verdict(&s, "192.168.1.9", name, "2026-01-01T00:00:00Z"),
                Verdict::Log,
                "{name}"
            );
        }
    }

    /// Real update, telemetry, activation and download hosts from the zone
    /// research (manifests, installer and rescue-tool scripts, mirror lists)
    /// that the shipped list does not name: its zones must block them.
    const UNLISTED_INFRASTRUCTURE: &[&str] = &[
        "products.s.kaspersky-labs.com",
        "arc-products.s.kaspersky-labs.com",
        "devbuilds.s.kaspersky-labs.com",
        "rescuedisk.s.kaspersky-labs.com",
        "products.kaspersky-labs.com",
        "dm.kaspersky-labs.com",
        "api-router.kaspersky-labs.com",
        "mobile.kaspersky-labs.com",
        "updates1.kaspersky-labs.com",
        "updates2.kaspersky-labs.com",
        "updates3.kaspersky-labs.com",
        "downloads-us1.kaspersky-labs.com",
        "ftp.downloads1.kaspersky-labs.com",
        "ftp.downloads2.kaspersky-labs.com",
        "ftp.downloads3.kaspersky-labs.com",
        "www.downloads2.kaspersky-labs.com",
        "ksn-crypto-file-geo.kaspersky-labs.com",
        "ppt-issuer.ksn.kaspersky-labs.com",
        "pdc1.fra5.pdc.kaspersky.com",
        "pdc2.fra5.pdc.kaspersky.com",
        "pdc3.trt.pdc.kaspersky.com",
        "pdc4.trt.pdc.kaspersky.com",
        "pdc5.pa2.pdc.kaspersky.com",
        "www.dnl-01.geo.kaspersky.com",
        "bases.ftp.kaspersky.com",
        "www.ftp.kaspersky.ru",
        "activate.activation.kaspersky.com",
        "www.keyfile.kaspersky.com",
        "upload.kavdumps.kaspersky.com",
    ];

    #[test]
    fn zones_block_infrastructure_hosts_no_entry_names() {
        let s = default_policy();
        let list = &s.config.lists[0];
        let names: Vec<&[u8]> = list
            .catalogue
            .as_ref()
            .unwrap()
            .entries
            .iter()
            .map(|e| e.domain.as_bytes())
            .collect();
        for name in UNLISTED_INFRASTRUCTURE {
            assert!(!names.contains(&name.as_bytes()), "{name} is a list entry");
            let buf = NameBuf::new(name.as_bytes()).unwrap();
            let d = s.decide("10.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
            assert_eq!(d.verdict, Verdict::Block, "{name}");
            // Decided by a zone, a subzone or a pattern, never by the name itself.
            let m = d.matched.unwrap();
            assert!(m.pattern.is_some() || m.entry != name.as_bytes(), "{name}");
            let before = s.decide(
                "10.0.0.1".parse().unwrap(),
                buf.as_bytes(),
                at("2024-09-29T03:59:59Z"),
            );
            assert_eq!(before.verdict, Verdict::Log, "{name}");
        }
    }

    #[test]
    fn look_alikes_and_unrelated_names_are_not_kaspersky() {
        let s = default_policy();
        for name in [
            "notkaspersky.com",
            "kaspersky.com.example.org",
            "kaspersky-labs.com.evil.example",
            "mykaspersky-labs.com",
            "downloads1.example.com",
            "ksn-file-geo.example.net",
            "example.com",
        ] {
            let buf = NameBuf::new(name.as_bytes()).unwrap();
            let d = s.decide("10.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
            assert_eq!((d.verdict, d.rule), (Verdict::Allow, None), "{name}");
        }
    }

    #[test]
    fn a_name_only_a_zone_covers_is_unclassified() {
        let s = default_policy();
        let decide = |name: &str| {
            let buf = NameBuf::new(name.as_bytes()).unwrap();
            let d = s.decide("10.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
            (d.verdict, d.matched.unwrap().unclassified)
        };
        assert_eq!(decide("dm.kaspersky-labs.com"), (Verdict::Block, true));
        assert_eq!(decide("new-portal.kaspersky.com"), (Verdict::Log, true));
        assert_eq!(decide("s05.upd.kaspersky.com"), (Verdict::Block, false));
        assert_eq!(
            decide("pdc1.fra5.pdc.kaspersky.com"),
            (Verdict::Block, false)
        );
        assert_eq!(decide("kaspersky.com"), (Verdict::Log, false));
    }

    #[test]
    fn bypass_names_are_blocked_with_the_answer_clients_expect() {
        let s = default_policy();
        for (name, mode) in [
            (
                "use-application-dns.net",
                crate::config::AnswerMode::NxDomain,
            ),
            ("_dns.resolver.arpa", crate::config::AnswerMode::NoData),
            ("resolver.arpa", crate::config::AnswerMode::NoData),
        ] {
            let buf = NameBuf::new(name.as_bytes()).unwrap();
            let d = s.decide("192.168.1.2".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
            assert_eq!(d.verdict, Verdict::Block, "{name}");
            assert_eq!(s.blocking_for(&d).answer, mode, "{name}");
        }
        // iCloud Private Relay is off by default; public resolvers are logged.
        assert_eq!(
            verdict(&s, "192.168.1.2", "mask.icloud.com", CUTOFF),
            Verdict::Allow
        );
        assert_eq!(
            verdict(&s, "192.168.1.2", "dns.google", CUTOFF),
            Verdict::Log
        );
    }

    #[test]
    fn auto_bypass_follows_the_networks_where_a_rule_blocks() {
        let s = snapshot(
            "networks:\n  lab: [10.9.0.0/16]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: lab-block, networks: [lab], lists: [k], action: block}\n  - {name: watch, lists: [k], action: log}\nbypass:\n  icloud_private_relay: on\n",
        );
        let canary = "use-application-dns.net";
        assert_eq!(verdict(&s, "10.9.0.1", canary, CUTOFF), Verdict::Block);
        assert_eq!(verdict(&s, "192.168.0.1", canary, CUTOFF), Verdict::Allow);
        assert_eq!(
            verdict(&s, "192.168.0.1", "mask-h2.icloud.com", CUTOFF),
            Verdict::Block
        );
        let off = snapshot(
            "lists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: b, lists: [k], action: block}\nbypass: {firefox_canary: off, ddr: off}\n",
        );
        assert_eq!(verdict(&off, "10.9.0.1", canary, CUTOFF), Verdict::Allow);
    }

    #[test]
    fn unlisted_names_are_allowed_without_a_rule() {
        let s = default_policy();
        let buf = NameBuf::new(b"notkaspersky.com").unwrap();
        let d = s.decide("127.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
        assert_eq!((d.verdict, d.rule, d.matched), (Verdict::Allow, None, None));
    }

    #[test]
    fn clients_outside_the_allowed_ranges_are_refused() {
        let s = default_policy();
        assert_eq!(
            verdict(&s, "8.8.8.8", "example.com", CUTOFF),
            Verdict::Refuse
        );
        assert_eq!(
            verdict(&s, "2001:db8::1", "s05.upd.kaspersky.com", CUTOFF),
            Verdict::Refuse
        );
        assert_eq!(
            verdict(&s, "::ffff:8.8.8.8", "example.com", CUTOFF),
            Verdict::Refuse
        );
    }

    #[test]
    fn ipv4_mapped_client_gets_its_ipv4_network_policy() {
        let s = snapshot(
            "networks:\n  lab: [10.9.0.0/16]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: lab-block, networks: [lab], lists: [k], action: block}\n",
        );
        assert_eq!(
            verdict(&s, "::ffff:10.9.0.1", "kaspersky.com", CUTOFF),
            Verdict::Block
        );
        assert_eq!(
            verdict(&s, "::ffff:10.8.0.1", "kaspersky.com", CUTOFF),
            Verdict::Allow
        );
    }

    #[test]
    fn most_specific_network_decides() {
        let s = snapshot(
            "networks:\n  office: [10.0.0.0/8]\n  soc: [10.66.0.0/16]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: enforce, networks: [office], lists: [k], action: block}\n  - {name: monitor, networks: [soc], lists: [k], action: log}\n",
        );
        assert_eq!(
            verdict(&s, "10.1.1.1", "upd.kaspersky.com", CUTOFF),
            Verdict::Block
        );
        assert_eq!(
            verdict(&s, "10.66.1.1", "upd.kaspersky.com", CUTOFF),
            Verdict::Log
        );
        assert_eq!(
            verdict(&s, "192.168.1.1", "upd.kaspersky.com", CUTOFF),
            Verdict::Allow
        );
    }

    #[test]
    fn allow_beats_block_whatever_the_order() {
        let s = snapshot(
            "lists:\n  extra: {path: extra.txt}\nrules:\n  - {name: block-all, lists: [extra], action: block}\n  - {name: exempt, lists: [extra], action: allow}\n",
        );
        let buf = NameBuf::new(b"a.blocked.example").unwrap();
        let d = s.decide("127.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.rule.map(|(r, _)| r), Some(1));
    }

    #[test]
    fn block_beats_log_and_the_first_rule_wins_a_tie() {
        let s = snapshot(
            "lists:\n  extra: {path: extra.txt}\nrules:\n  - {name: watch, lists: [extra], action: log}\n  - {name: first-block, lists: [extra], action: block}\n  - {name: second-block, lists: [extra], action: block}\n",
        );
        let buf = NameBuf::new(b"blocked.example").unwrap();
        let d = s.decide("127.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
        assert_eq!(
            (d.verdict, d.rule.map(|(r, _)| r)),
            (Verdict::Block, Some(1))
        );
    }

    #[test]
    fn rule_without_before_does_not_apply_before_its_instant() {
        let s = snapshot(
            "lists:\n  extra: {path: extra.txt}\nrules:\n  - {name: later, lists: [extra], action: block, from: \"2030-01-01T00:00:00+01:00\"}\n",
        );
        assert_eq!(
            verdict(
                &s,
                "127.0.0.1",
                "blocked.example",
                "2029-12-31T22:59:59.999999999Z"
            ),
            Verdict::Allow
        );
        assert_eq!(
            verdict(&s, "127.0.0.1", "blocked.example", "2029-12-31T23:00:00Z"),
            Verdict::Block
        );
    }

    #[test]
    fn until_ends_the_action_and_after_takes_over() {
        let s = snapshot(
            "lists:\n  extra: {path: extra.txt}\nrules:\n  - {name: window, lists: [extra], action: block, from: \"2025-01-01T00:00:00Z\", until: \"2025-02-01T00:00:00Z\", after: log}\n",
        );
        assert_eq!(
            verdict(
                &s,
                "127.0.0.1",
                "blocked.example",
                "2025-01-31T23:59:59.999999999Z"
            ),
            Verdict::Block
        );
        let buf = NameBuf::new(b"blocked.example").unwrap();
        let d = s.decide(
            "127.0.0.1".parse().unwrap(),
            buf.as_bytes(),
            at("2025-02-01T00:00:00Z"),
        );
        assert_eq!(
            (d.verdict, d.rule.map(|(_, p)| p)),
            (Verdict::Log, Some(Phase::After))
        );
    }

    #[test]
    fn categories_select_entries_by_their_most_specific_entry() {
        let s = snapshot(
            "lists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: brand-block, lists: [k], categories: [brand], action: block}\n",
        );
        assert_eq!(
            verdict(&s, "127.0.0.1", "www.kaspersky.com", CUTOFF),
            Verdict::Block
        );
        // Covered by its own `web` entry, not by the brand suffix.
        assert_eq!(
            verdict(&s, "127.0.0.1", "opentip.kaspersky.com", CUTOFF),
            Verdict::Allow
        );
    }

    #[test]
    fn answer_addresses_in_listed_prefixes_are_decided_by_their_rules() {
        let s = snapshot(
            "networks:\n  staff: [10.1.0.0/16]\nlists:\n  kn: {builtin: kaspersky-networks}\n  mine: {prefixes: [203.0.113.0/24]}\nrules:\n  - {name: ips-block, networks: [staff], lists: [kn], action: block, from: \"2024-09-29T04:00:00Z\", before: log}\n  - {name: mine-log, lists: [mine], action: log}\n",
        );
        let staff = "10.1.2.3".parse().unwrap();
        let d = s.decide_address(staff, "91.103.66.155".parse().unwrap(), at(CUTOFF));
        assert_eq!(d.verdict, Verdict::Block);
        assert_eq!(d.matched.unwrap().entry, b"91.103.64.0/21");
        let d = s.decide_address(
            staff,
            "91.103.66.155".parse().unwrap(),
            at("2024-09-01T00:00:00Z"),
        );
        assert_eq!(d.verdict, Verdict::Log);
        let other = "192.168.1.1".parse().unwrap();
        assert_eq!(
            s.decide_address(other, "91.103.66.155".parse().unwrap(), at(CUTOFF))
                .verdict,
            Verdict::Allow
        );
        assert_eq!(
            s.decide_address(other, "203.0.113.9".parse().unwrap(), at(CUTOFF))
                .verdict,
            Verdict::Log
        );
        assert_eq!(
            s.decide_address(staff, "192.0.2.1".parse().unwrap(), at(CUTOFF))
                .verdict,
            Verdict::Allow
        );
        // Names are not matched against prefix lists, nor addresses against name lists.
        assert_eq!(
            verdict(&s, "10.1.2.3", "kaspersky.com", CUTOFF),
            Verdict::Allow
        );
    }

    #[test]
    fn decision_names_the_entry_and_category() {
        let s = default_policy();
        let buf = NameBuf::new(b"S05.UPD.Kaspersky.COM.").unwrap();
        let d = s.decide("127.0.0.1".parse().unwrap(), buf.as_bytes(), at(CUTOFF));
        let m = d.matched.unwrap();
        assert_eq!(m.entry, b"s05.upd.kaspersky.com");
        assert_eq!(m.category, Some(Category::Update));
        assert_eq!(m.coverage, Coverage::Exact);
        assert_eq!(s.config.rules[d.rule.unwrap().0].name, "kaspersky-cutoff");
        assert_eq!(s.network_name(d.network.unwrap()), "default");
    }
}
