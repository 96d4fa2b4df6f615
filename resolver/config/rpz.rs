//! `rpz:`: the RPZ zones cutoff serves to the resolvers people keep (BIND,
//! Unbound, PowerDNS Recursor): which zone names, which network's policy
//! and lists each holds, who may transfer them and which secondaries are
//! told of a change. Read and validated here, with a line for every bad
//! value; served by `crate::rpz`. Outside the query flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use super::check::{Checker, cidr};
use super::raw::RawConfig;
use super::{Network, Rule};

/// The `rpz:` section, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rpz {
    /// The zones, in file order.
    pub zones: Vec<RpzZone>,
    /// Clients that may ask for the zones' SOA and transfer them (default:
    /// loopback only); everyone else gets REFUSED.
    pub allow_transfer: Vec<IpNet>,
    /// Secondaries sent a NOTIFY when a zone's serial changes.
    pub notify: Vec<SocketAddr>,
}

/// One zone of `rpz.zones`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpzZone {
    /// The zone name, lowercase, without the trailing dot (`cutoff.rpz`).
    pub name: String,
    /// The network whose policy the zone holds.
    pub network: String,
    /// Only these lists (empty: every list of the network's rules).
    pub lists: Vec<String>,
}

impl Rpz {
    /// Whether `client` may read the zones.
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow_transfer.iter().any(|n| n.contains(&client))
    }
}

/// Validates `rpz:` against the networks, lists and rules; `None` (no
/// section) when absent.
pub(super) fn rpz(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    networks: &[Network],
    list_names: &[&str],
    rules: &[Option<Rule>],
) -> Option<Rpz> {
    let r = raw.rpz.as_ref()?;
    if r.zones.is_empty() {
        c.error(
            &r.at,
            "needs `zones`, each with a `name` such as `cutoff.rpz.`",
        );
    }
    let mut zones: Vec<RpzZone> = Vec::new();
    for z in &r.zones {
        let Some(name_at) = &z.name else {
            c.error(&z.at, "needs `name`, the zone name such as `cutoff.rpz.`");
            continue;
        };
        let Some(name) = zone_name(&name_at.value) else {
            c.error(
                name_at,
                format!(
                    "`{}` is not a zone name: labels of 1 to 63 letters, digits, `-` or `_`, 253 characters at most",
                    name_at.value
                ),
            );
            continue;
        };
        if zones.iter().any(|o| o.name == name) {
            c.error(name_at, format!("zone `{name}.` is given twice"));
            continue;
        }
        let network = z
            .network
            .as_ref()
            .map_or(crate::networks::DEFAULT_NETWORK, |a| a.value.as_str());
        let net_id = networks.iter().position(|n| n.name == network);
        if let (None, Some(a)) = (net_id, &z.network) {
            let known: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
            c.error(
                a,
                format!(
                    "no network named `{network}`; networks: {}",
                    known.join(", ")
                ),
            );
        }
        for l in &z.lists {
            let Some(list) = list_names.iter().position(|n| *n == l.value) else {
                c.error(
                    l,
                    format!(
                        "no list named `{}`; lists: {}",
                        l.value,
                        list_names.join(", ")
                    ),
                );
                continue;
            };
            let used = rules.iter().flatten().any(|rule| {
                rule.lists.contains(&list)
                    && net_id
                        .is_none_or(|id| rule.networks.as_ref().is_none_or(|n| n.contains(&id)))
            });
            if !used {
                c.error(
                    l,
                    format!(
                        "list `{}` is used by no rule of network `{network}`, so the zone could not say what it blocks",
                        l.value
                    ),
                );
            }
        }
        zones.push(RpzZone {
            name,
            network: network.to_owned(),
            lists: z.lists.iter().map(|l| l.value.clone()).collect(),
        });
    }
    let allow_transfer = match &r.allow_transfer {
        Some(items) => items.iter().filter_map(|a| cidr(c, a)).collect(),
        None => vec![
            IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
            IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ],
    };
    let notify = r
        .notify
        .iter()
        .filter_map(|a| super::check::socket(c, a, 53))
        .collect();
    Some(Rpz {
        zones,
        allow_transfer,
        notify,
    })
}

/// `Cutoff.RPZ.` → `cutoff.rpz`; `None` when it is not a usable zone name.
pub(crate) fn zone_name(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    fn problems(yaml: &str) -> Vec<String> {
        match crate::config::from_str(yaml, "test", std::path::Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    const BASE: &str = "lists:\n  kaspersky:\n    builtin: kaspersky\nrules:\n  - name: block\n    lists: [kaspersky]\n    action: block\n";

    #[test]
    fn a_zone_gets_loopback_transfers_and_no_notify_by_default() {
        let yaml = format!("{BASE}rpz:\n  zones:\n    - name: Cutoff.RPZ.\n");
        let c = crate::config::from_str(&yaml, "test", std::path::Path::new(".")).unwrap();
        let rpz = c.rpz.unwrap();
        assert_eq!(rpz.zones[0].name, "cutoff.rpz");
        assert_eq!(rpz.zones[0].network, "default");
        assert!(rpz.allows("127.0.0.9".parse().unwrap()));
        assert!(rpz.allows("::1".parse().unwrap()));
        assert!(rpz.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!rpz.allows("192.168.1.1".parse().unwrap()));
        assert!(rpz.notify.is_empty());
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line() {
        let yaml = format!(
            "{BASE}rpz:\n  zones:\n    - name: bad..zone\n    - name: ok.rpz\n      network: staff\n      lists: [nope]\n    - name: ok.rpz.\n    - network: default\n  allow_transfer: [10.0.0.0/33]\n  notify: [\"not an address\"]\n"
        );
        let p = problems(&yaml);
        let want = [
            "line 10: rpz.zones[0].name: `bad..zone` is not a zone name",
            "line 12: rpz.zones[1].network: no network named `staff`",
            "line 13: rpz.zones[1].lists[0]: no list named `nope`",
            "line 14: rpz.zones[2].name: zone `ok.rpz.` is given twice",
            "line 15: rpz.zones[3]: needs `name`",
            "line 16: rpz.allow_transfer[0]: `10.0.0.0/33` is not a CIDR",
            "line 17: rpz.notify[0]: `not an address` is not an address",
        ];
        for w in want {
            assert!(p.iter().any(|l| l.starts_with(w)), "{w} not in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    #[test]
    fn a_list_no_rule_of_the_network_uses_is_an_error() {
        let yaml = BASE.replace("rules:", "  extra:\n    path: /dev/null\nrules:")
            + "rpz:\n  zones:\n    - name: cutoff.rpz\n      lists: [extra]\n";
        let p = problems(&yaml);
        assert!(
            p.iter()
                .any(|l| l.contains("list `extra` is used by no rule")),
            "{p:#?}"
        );
    }
}
