//! Client address → may it use the resolver, and which named network is it in.
//!
//! Sits first in `policy::decide`: longest-prefix match over IPv4 and IPv6
//! tries, with IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a
//! dual-stack socket reports) canonicalised to IPv4 before the lookup.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// Index of a network in the snapshot; the `default` network is the last.
pub type NetworkId = usize;

/// The name of the network that catches allowed clients in no other network.
pub const DEFAULT_NETWORK: &str = "default";

/// A longest-prefix map from CIDRs to values, for both address families.
#[derive(Clone)]
pub struct PrefixTable<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        Self {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PrefixTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixTable")
            .field("v4", &self.v4.iter().count())
            .field("v6", &self.v6.iter().count())
            .finish()
    }
}

impl<T> PrefixTable<T> {
    /// Adds a CIDR (host bits are cleared); returns the value it replaced.
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        match net.trunc() {
            IpNet::V4(n) => self.v4.insert(n, value),
            IpNet::V6(n) => self.v6.insert(n, value),
        }
    }

    /// Every CIDR in the table.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.v4
            .iter()
            .map(|(n, _)| IpNet::V4(n))
            .chain(self.v6.iter().map(|(n, _)| IpNet::V6(n)))
    }

    /// The value of the most specific CIDR containing all of `net`.
    pub fn lookup_net(&self, net: IpNet) -> Option<(IpNet, &T)> {
        match net {
            IpNet::V4(n) => self.v4.get_lpm(&n).map(|(n, v)| (IpNet::V4(n), v)),
            IpNet::V6(n) => self.v6.get_lpm(&n).map(|(n, v)| (IpNet::V6(n), v)),
        }
    }

    /// The value of the most specific CIDR holding `ip`, and that CIDR.
    pub fn lookup(&self, ip: IpAddr) -> Option<(IpNet, &T)> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, v)| (IpNet::V4(n), v)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, v)| (IpNet::V6(n), v)),
        }
    }
}

/// Who may use the resolver: the most specific of the allow and deny CIDRs
/// holding the client decides; clients in neither are denied.
#[derive(Clone, Debug, Default)]
pub struct AccessList {
    table: PrefixTable<bool>,
}

impl AccessList {
    /// Builds the list; a CIDR in both `allow` and `deny` is denied.
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> Self {
        let mut table = PrefixTable::default();
        for n in allow {
            table.insert(*n, true);
        }
        for n in deny {
            table.insert(*n, false);
        }
        Self { table }
    }

    /// Whether `ip` may use the resolver.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.table.lookup(ip).is_some_and(|(_, allowed)| *allowed)
    }
}

/// The named networks: client address → the most specific network.
#[derive(Clone, Debug)]
pub struct Networks {
    table: PrefixTable<NetworkId>,
    default: NetworkId,
}

impl Networks {
    /// Builds the table from `(id, cidrs)`; `default` catches the rest.
    pub fn new<'a>(
        nets: impl IntoIterator<Item = (NetworkId, &'a [IpNet])>,
        default: NetworkId,
    ) -> Self {
        let mut table = PrefixTable::default();
        for (id, cidrs) in nets {
            for n in cidrs {
                table.insert(*n, id);
            }
        }
        Self { table, default }
    }

    /// The network of `ip`, and the CIDR that put it there (`None` for the
    /// default network).
    pub fn lookup(&self, ip: IpAddr) -> (NetworkId, Option<IpNet>) {
        match self.table.lookup(ip) {
            Some((net, id)) => (*id, Some(net)),
            None => (self.default, None),
        }
    }
}

/// Access and network in one longest-prefix lookup, for the query path.
///
/// Every CIDR of the access list and of the networks is one entry holding
/// both answers for the addresses it covers: whether they are allowed (the
/// most specific access CIDR containing it) and their network (the most
/// specific network CIDR containing it). Because CIDRs nest, the most
/// specific entry holding a client gives the same two answers as two
/// separate lookups would.
#[derive(Clone, Debug)]
pub struct Clients {
    table: PrefixTable<Slot>,
    /// The same entries, most specific first, when there are few of them
    /// (the usual config): a scan of a handful of masks beats walking a trie.
    small: Option<Vec<(IpNet, Slot)>>,
}

/// Allowed?, the network, and the CIDR that put the client in it.
type Slot = (bool, NetworkId, Option<IpNet>);

/// Up to this many CIDRs, lookups scan a list instead of the trie.
const SMALL: usize = 32;

impl Clients {
    /// Builds the combined table.
    pub fn new(access: &AccessList, networks: &Networks) -> Self {
        let mut table = PrefixTable::default();
        let prefixes = access
            .table
            .iter()
            .chain(networks.table.iter())
            .collect::<Vec<IpNet>>();
        let mut entries: Vec<(IpNet, Slot)> = Vec::new();
        for p in prefixes {
            let allowed = access.table.lookup_net(p).is_some_and(|(_, a)| *a);
            let (network, cidr) = match networks.table.lookup_net(p) {
                Some((net, id)) => (*id, Some(net)),
                None => (networks.default, None),
            };
            let slot = (allowed, network, cidr);
            if table.insert(p, slot).is_none() {
                entries.push((p, slot));
            } else if let Some(e) = entries.iter_mut().find(|(n, _)| *n == p) {
                e.1 = slot;
            }
        }
        entries.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let small = (entries.len() <= SMALL).then_some(entries);
        Self { table, small }
    }

    /// `None` when the client may not use the resolver; else its network
    /// and the CIDR that put it there (`None` for `default`).
    pub fn lookup(&self, ip: IpAddr) -> Option<(NetworkId, Option<IpNet>)> {
        let ip = ip.to_canonical();
        let slot = match &self.small {
            Some(entries) => entries
                .iter()
                .find(|(n, _)| n.contains(&ip))
                .map(|(_, s)| s),
            None => self.table.lookup(ip).map(|(_, s)| s),
        };
        match slot {
            Some((true, network, cidr)) => Some((*network, *cidr)),
            _ => None,
        }
    }
}

/// The ranges allowed by default: loopback and the private ranges.
pub fn default_allowed() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Whether an address is loopback or in a private range (for start-up
/// warnings about listening where the internet can reach).
pub fn is_private(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    default_allowed().iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_picks_the_most_specific_network() {
        let office = [net("10.0.0.0/8")];
        let lab = [net("10.9.0.0/16")];
        let n = Networks::new([(0, &office[..]), (1, &lab[..])], 2);
        assert_eq!(n.lookup(ip("10.9.1.1")).0, 1);
        assert_eq!(n.lookup(ip("10.8.1.1")).0, 0);
        assert_eq!(n.lookup(ip("192.168.1.1")), (2, None));
    }

    #[test]
    fn ipv4_mapped_client_matches_ipv4_network() {
        let office = [net("10.1.0.0/16")];
        let n = Networks::new([(0, &office[..])], 1);
        assert_eq!(n.lookup(ip("::ffff:10.1.2.3")).0, 0);
    }

    #[test]
    fn ipv6_clients_match_ipv6_networks() {
        let v6 = [net("fd00:1::/64")];
        let n = Networks::new([(0, &v6[..])], 1);
        assert_eq!(n.lookup(ip("fd00:1::42")).0, 0);
        assert_eq!(n.lookup(ip("fd00:2::42")).0, 1);
    }

    #[test]
    fn host_bits_in_a_cidr_are_ignored() {
        let sloppy = [net("10.1.2.3/16")];
        let n = Networks::new([(0, &sloppy[..])], 1);
        assert_eq!(n.lookup(ip("10.1.200.1")).0, 0);
    }

    #[test]
    fn default_access_allows_loopback_and_private_ranges_only() {
        let acl = AccessList::new(&default_allowed(), &[]);
        for a in [
            "127.0.0.1",
            "::1",
            "10.2.3.4",
            "172.31.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(acl.allows(ip(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "0.0.0.0",
        ] {
            assert!(!acl.allows(ip(a)), "{a}");
        }
    }

    #[test]
    fn deny_inside_allow_wins_when_more_specific() {
        let acl = AccessList::new(&[net("10.0.0.0/8")], &[net("10.66.0.0/16")]);
        assert!(acl.allows(ip("10.1.1.1")));
        assert!(!acl.allows(ip("10.66.1.1")));
    }
}

#[cfg(test)]
mod combined_tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn many_cidrs_use_the_trie_and_answer_the_same() {
        let many: Vec<IpNet> = (0..40u8).map(|i| net(&format!("10.{i}.0.0/16"))).collect();
        let acl = AccessList::new(&[net("10.0.0.0/8")], &[]);
        let nets = Networks::new([(0, &many[..])], 1);
        let c = Clients::new(&acl, &nets);
        assert!(c.small.is_none());
        assert_eq!(
            c.lookup("10.3.1.1".parse().unwrap()),
            Some((0, Some(net("10.3.0.0/16"))))
        );
        assert_eq!(c.lookup("10.200.1.1".parse().unwrap()), Some((1, None)));
        assert_eq!(c.lookup("11.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn one_lookup_answers_access_and_network_like_two() {
        let acl = AccessList::new(
            &[net("10.0.0.0/8"), net("192.168.0.0/16")],
            &[net("10.1.5.0/24")],
        );
        let office = [net("10.1.0.0/16")];
        let outside = [net("8.8.8.0/24")];
        let lab = [net("10.1.5.128/25")];
        let nets = Networks::new([(0, &office[..]), (1, &outside[..]), (2, &lab[..])], 3);
        let c = Clients::new(&acl, &nets);
        for ip in [
            "10.1.2.3",
            "10.1.5.7",
            "10.1.5.200",
            "10.2.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "9.9.9.9",
            "::1",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let expected = acl.allows(ip).then(|| nets.lookup(ip));
            assert_eq!(c.lookup(ip), expected, "{ip}");
        }
    }
}
