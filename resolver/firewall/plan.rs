//! The config reduced to what the rules need: cutoff's port, the clients
//! and the prefixes per address family, and the warnings. Both renderers
//! draw from a [`Plan`] and nothing else.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{FALLBACK_RESOLVERS, FirewallError, Options, Script};
use crate::config::{Access, Config};

/// One address family's share of the rules, addresses as text.
pub(super) struct Family {
    /// `v4` or `v6`: the suffix of set names.
    pub(super) suffix: &'static str,
    /// The nft address expression: `ip` or `ip6`.
    pub(super) nft: &'static str,
    /// The iptables command.
    pub(super) tool: &'static str,
    /// iptables' REJECT type for udp 853.
    pub(super) reject_udp: &'static str,
    /// `access.allow` minus loopback and `access.deny`, aggregated.
    pub(super) clients: Vec<String>,
    /// The address lists' prefixes, aggregated.
    pub(super) blocked: Vec<String>,
    /// The fallback resolvers (IPv4 only).
    pub(super) fallback: Vec<String>,
}

/// The config reduced to what the rules need.
pub(super) struct Plan<'c> {
    pub(super) origin: &'c str,
    pub(super) version: &'c str,
    pub(super) port: u16,
    /// Where the port came from, for the header.
    pub(super) port_from: &'static str,
    pub(super) interface: Option<&'c str>,
    /// Lists with prefixes, and how many each has.
    pub(super) lists: Vec<(&'c str, usize)>,
    pub(super) families: [Family; 2],
    pub(super) warnings: Vec<String>,
}

impl<'c> Plan<'c> {
    pub(super) fn new(config: &'c Config, opts: &'c Options) -> Result<Self, FirewallError> {
        let (port, port_from) = port(config, opts)?;
        if let Some(name) = &opts.lan_interface {
            let ok = (1..=15).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(FirewallError::Interface { name: name.clone() });
            }
        }
        let (clients_v4, clients_v6) = clients(&config.access);
        if clients_v4.is_empty() && clients_v6.is_empty() {
            return Err(FirewallError::NoClients);
        }
        let mut lists = Vec::new();
        let mut blocked = Vec::new();
        for list in config.lists.iter().filter(|l| !l.prefixes.is_empty()) {
            lists.push((list.name.as_str(), list.prefixes.len()));
            for text in &list.prefixes {
                let net = text.parse::<IpNet>().map_err(|_| FirewallError::Prefix {
                    list: list.name.clone(),
                    prefix: text.clone(),
                })?;
                blocked.push(net.trunc());
            }
        }
        let (blocked_v4, blocked_v6) = split(blocked);
        let mut warnings = Vec::new();
        if !config
            .listen
            .iter()
            .any(|a| !a.ip().is_loopback() && a.port() == port)
        {
            let listen: Vec<String> = config.listen.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "cutoff listens on no non-loopback address at port {port} (listen: {}), but a \
                 redirected query arrives at the address of the interface it came in on: add \
                 `0.0.0.0:{port}` and `[::]:{port}` (or the LAN addresses) to `listen`, or \
                 redirected clients get no answer at all.",
                listen.join(", ")
            ));
        }
        Ok(Self {
            origin: &config.origin,
            version: &config.version,
            port,
            port_from,
            interface: opts.lan_interface.as_deref(),
            lists,
            families: [
                Family {
                    suffix: "v4",
                    nft: "ip",
                    tool: "iptables",
                    reject_udp: "icmp-admin-prohibited",
                    clients: strings(Ipv4Net::aggregate(&clients_v4)),
                    blocked: strings(Ipv4Net::aggregate(&blocked_v4)),
                    fallback: strings(FALLBACK_RESOLVERS.to_vec()),
                },
                Family {
                    suffix: "v6",
                    nft: "ip6",
                    tool: "ip6tables",
                    reject_udp: "icmp6-adm-prohibited",
                    clients: strings(Ipv6Net::aggregate(&clients_v6)),
                    blocked: strings(Ipv6Net::aggregate(&blocked_v6)),
                    fallback: Vec::new(),
                },
            ],
            warnings,
        })
    }

    /// The comment every script starts with, after its `#!` line.
    pub(super) fn header(&self, s: &mut Script, format: &str, usage: &[&str]) {
        let interfaces = match self.interface {
            Some(i) => format!("traffic arriving on {i} only"),
            None => "traffic arriving on any interface".to_owned(),
        };
        let lists = if self.lists.is_empty() {
            "no list has prefixes".to_owned()
        } else {
            let names: Vec<String> = self
                .lists
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            format!("prefixes from {}", names.join(", "))
        };
        for line in [
            format!("# cutoff firewall rules for {format}, generated by `cutoff firewall`"),
            format!("# from {} (config version {}).", self.origin, self.version),
        ] {
            s.line(0, line);
        }
        s.wrapped(
            "# ",
            "# ",
            &format!(
                "DNS port {} ({}); {interfaces}; {lists}. Regenerate after a config change \
                 rather than editing.",
                self.port, self.port_from
            ),
        );
        for line in [
            "#".to_owned(),
            "# Run this ON the cutoff host when that host is the network's router or".to_owned(),
            "# gateway, so the clients' traffic passes through it. If cutoff runs on".to_owned(),
            "# another machine, put the equivalent on the router instead: DNAT the".to_owned(),
            "# clients' udp/tcp 53 to cutoff's address and port, reject 853, drop the".to_owned(),
            "# prefixes. docs/bypass.md: what the sinkhole stops, what it cannot, and".to_owned(),
            "# what these rules add.".to_owned(),
            "#".to_owned(),
        ] {
            s.line(0, line);
        }
        for u in usage {
            s.line(0, format_args!("# {u}"));
        }
        for w in &self.warnings {
            s.line(0, "#");
            s.wrapped("# WARNING: ", "#   ", w);
        }
    }
}

/// The port cutoff answers on, and where that came from.
fn port(config: &Config, opts: &Options) -> Result<(u16, &'static str), FirewallError> {
    let (port, from) = match opts.dns_port {
        Some(p) => (p, "--port"),
        None => match config.listen.iter().find(|a| !a.ip().is_loopback()) {
            Some(a) => (a.port(), "the first non-loopback listen address"),
            None => (
                config.listen.first().ok_or(FirewallError::NoListen)?.port(),
                "the first listen address",
            ),
        },
    };
    if port == 0 {
        return Err(FirewallError::PortZero);
    }
    Ok((port, from))
}

/// `access.allow` minus loopback and the `access.deny` CIDRs that win over
/// each allow CIDR (as specific or more: the most specific wins, and a CIDR
/// in both is denied), per family.
fn clients(access: &Access) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    // Checked at compile time.
    const LOOPBACK: [IpNet; 2] = [
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)),
        IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ];
    let mut pieces = Vec::new();
    for allow in access.allow.iter().map(IpNet::trunc) {
        let holes: Vec<IpNet> = access
            .deny
            .iter()
            .map(IpNet::trunc)
            .filter(|d| d.prefix_len() >= allow.prefix_len())
            .chain(LOOPBACK)
            .collect();
        subtract(allow, &holes, &mut pieces);
    }
    split(pieces)
}

/// Pushes the parts of `net` outside every hole. Two CIDRs are either
/// disjoint or one holds the other, so halving `net` until each half is one
/// or the other ends after at most 128 levels.
fn subtract(net: IpNet, holes: &[IpNet], out: &mut Vec<IpNet>) {
    if holes.iter().any(|h| h.contains(&net)) {
        return;
    }
    if !holes.iter().any(|h| net.contains(h)) {
        out.push(net);
        return;
    }
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for half in halves {
            subtract(half, holes, out);
        }
    }
}

fn split(nets: Vec<IpNet>) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(n) => v4.push(n),
            IpNet::V6(n) => v6.push(n),
        }
    }
    (v4, v6)
}

pub(super) fn strings<T: ToString>(v: Vec<T>) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::config;
    use crate::firewall::{Format, render, warnings};

    fn clients_of(yaml: &str) -> (Vec<String>, Vec<String>) {
        let (v4, v6) = clients(&config(yaml).access);
        (
            strings(Ipv4Net::aggregate(&v4)),
            strings(Ipv6Net::aggregate(&v6)),
        )
    }

    #[test]
    fn loopback_is_not_a_client() {
        let (v4, v6) = clients_of("access:\n  allow: [127.0.0.0/8, '::1/128', 10.0.0.0/8]\n");
        assert_eq!(v4, ["10.0.0.0/8"]);
        assert!(v6.is_empty());
        // An allow-everything config keeps everything but loopback.
        let (v4, v6) = clients_of("access:\n  allow: [0.0.0.0/0, '::/0']\n");
        assert_eq!(v4.len(), 8, "{v4:?}");
        assert!(
            v4.iter()
                .all(|n| !n.parse::<Ipv4Net>().unwrap().contains(&Ipv4Addr::LOCALHOST))
        );
        assert!(v4.contains(&"128.0.0.0/1".to_owned()) && v4.contains(&"126.0.0.0/8".to_owned()));
        assert_eq!(v6.len(), 128);
    }

    #[test]
    fn denied_ranges_are_not_clients_unless_a_more_specific_allow_holds_them() {
        let (v4, _) = clients_of(
            "access:\n  allow: [10.0.0.0/8, 10.1.2.0/24, 192.168.1.0/24]\n  deny: [10.1.0.0/16, 192.168.0.0/16]\n",
        );
        // 10/8 minus 10.1/16 is eight pieces; 10.1.2/24 is back in; a deny
        // less specific than an allow does not take it away.
        assert_eq!(v4.len(), 10, "{v4:?}");
        assert!(v4.contains(&"10.1.2.0/24".to_owned()));
        assert!(v4.contains(&"192.168.1.0/24".to_owned()));
        assert!(
            !v4.iter()
                .any(|n| n == "10.0.0.0/8" || n.starts_with("10.1.0."))
        );
    }

    #[test]
    fn port_is_the_first_non_loopback_listen_port_unless_given() {
        let c = config("listen: ['127.0.0.1:5533', '0.0.0.0:53', '[::]:5300']\n");
        let none = Options::default();
        let p = Plan::new(&c, &none).unwrap();
        assert_eq!((p.port, p.warnings.len()), (53, 0));
        let opts = Options {
            dns_port: Some(5300),
            ..Options::default()
        };
        assert_eq!(Plan::new(&c, &opts).unwrap().port, 5300);
    }

    #[test]
    fn listening_on_loopback_only_is_warned_about() {
        let c = config("listen: ['127.0.0.1:5533']\n");
        let w = warnings(&c, &Options::default()).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("`0.0.0.0:5533`"), "{w:?}");
        let script = render(&c, Format::Nftables, &Options::default()).unwrap();
        assert!(script.contains("# WARNING: cutoff listens on no non-loopback"));
    }
}
