//! The rules as one nftables table, `table inet cutoff`, for `nft -f`.

use super::Script;
use super::plan::{Family, Plan};

/// Rate of the log rules: enough to see who, not enough to flood the log.
const LOG_LIMIT: &str = "limit rate 10/minute burst 5 packets";

pub(super) fn render(p: &Plan<'_>) -> String {
    let mut s = Script::default();
    s.line(0, "#!/usr/sbin/nft -f");
    p.header(
        &mut s,
        "nftables",
        &[
            "Check:   nft -c -f FILE",
            "Apply:   nft -f FILE   (as root; running it again replaces the rules)",
            "Remove:  nft delete table inet cutoff",
            "Counters: nft list table inet cutoff",
        ],
    );
    s.blank();
    s.line(
        0,
        "# Declaring the table first lets the delete succeed on the first run.",
    );
    s.line(
        0,
        "# The file is one transaction: the old rules go and the new come at once.",
    );
    s.line(0, "table inet cutoff");
    s.line(0, "delete table inet cutoff");
    s.blank();
    s.line(0, "table inet cutoff {");
    sets(p, &mut s);
    prerouting(p, &mut s);
    s.blank();
    forward(p, &mut s);
    if p.families.iter().any(|f| !f.blocked.is_empty()) {
        s.blank();
        output(p, &mut s);
    }
    s.line(0, "}");
    s.0
}

fn sets(p: &Plan<'_>, s: &mut Script) {
    let mut first = true;
    let mut gap = |s: &mut Script| {
        if !std::mem::take(&mut first) {
            s.blank();
        }
    };
    gap(s);
    s.line(1, "# Clients: access.allow minus loopback and access.deny.");
    for f in p.families.iter().filter(|f| !f.clients.is_empty()) {
        set(s, &format!("clients_{}", f.suffix), f, &f.clients, true);
    }
    for f in &p.families {
        if !f.fallback.is_empty() {
            gap(s);
            s.line(
                1,
                "# The public resolvers Kaspersky products fall back to, over plain",
            );
            s.line(1, "# DNS, when the local resolver fails them.");
            set(s, &format!("fallback_{}", f.suffix), f, &f.fallback, false);
        }
    }
    gap(s);
    if p.lists.is_empty() {
        s.line(
            1,
            "# No list in the config has prefixes: no address is dropped.",
        );
    } else {
        s.line(
            1,
            "# Kaspersky's announced prefixes (the config's address lists), dropped",
        );
        s.line(
            1,
            "# whatever action the config's rules give the list. They also carry",
        );
        s.line(1, "# Kaspersky's mail relays and web sites.");
    }
    for f in p.families.iter().filter(|f| !f.blocked.is_empty()) {
        set(s, &format!("kaspersky_{}", f.suffix), f, &f.blocked, true);
    }
    s.blank();
}

fn set(s: &mut Script, name: &str, f: &Family, elements: &[String], interval: bool) {
    s.line(1, format_args!("set {name} {{"));
    s.line(
        2,
        format_args!("type {}_addr", if f.nft == "ip" { "ipv4" } else { "ipv6" }),
    );
    if interval {
        s.line(2, "flags interval");
        s.line(2, "auto-merge");
    }
    s.line(2, "elements = {");
    for (i, e) in elements.iter().enumerate() {
        let comma = if i + 1 < elements.len() { "," } else { "" };
        s.line(3, format_args!("{e}{comma}"));
    }
    s.line(2, "}");
    s.line(1, "}");
}

/// The match for packets from clients of family `f`.
fn from_clients(p: &Plan<'_>, f: &Family) -> String {
    let iface = p
        .interface
        .map(|i| format!("iifname \"{i}\" "))
        .unwrap_or_default();
    format!("{iface}{} saddr @clients_{}", f.nft, f.suffix)
}

fn prerouting(p: &Plan<'_>, s: &mut Script) {
    s.line(1, "chain prerouting {");
    s.line(
        2,
        "type nat hook prerouting priority dstnat; policy accept;",
    );
    s.line(
        2,
        "# Prerouting sees what arrives at this host, never what it sends:",
    );
    s.line(
        2,
        "# cutoff's own upstream queries leave through output and are not",
    );
    s.line(
        2,
        "# redirected. Queries addressed to this host go where they were sent.",
    );
    s.line(2, "fib daddr type local return");
    for f in p.families.iter().filter(|f| !f.clients.is_empty()) {
        let from = from_clients(p, f);
        if !f.fallback.is_empty() {
            s.line(
                2,
                "# The fallback resolvers need no rule of their own: the redirect",
            );
            s.line(
                2,
                "# below takes all outbound DNS. This counts and logs the attempts",
            );
            s.line(
                2,
                "# (a nat chain sees the first packet of each flow) for the SOC.",
            );
            s.line(
                2,
                format_args!(
                    "{from} {} daddr @fallback_{} meta l4proto {{ tcp, udp }} th dport 53 counter {LOG_LIMIT} log prefix \"cutoff fallback: \"",
                    f.nft, f.suffix
                ),
            );
        }
        s.line(
            2,
            format_args!(
                "{from} meta l4proto {{ tcp, udp }} th dport 53 counter redirect to :{}",
                p.port
            ),
        );
    }
    s.line(1, "}");
}

fn forward(p: &Plan<'_>, s: &mut Script) {
    s.line(1, "chain forward {");
    s.line(
        2,
        "type filter hook forward priority filter; policy accept;",
    );
    s.line(
        2,
        "# DNS over TLS (tcp 853) and over QUIC (udp 853) would pass cutoff by;",
    );
    s.line(
        2,
        "# refused, clients fall back to plain DNS, which is redirected.",
    );
    let clients = || p.families.iter().filter(|f| !f.clients.is_empty());
    for f in clients() {
        let from = from_clients(p, f);
        s.line(
            2,
            format_args!("{from} tcp dport 853 counter reject with tcp reset"),
        );
        s.line(
            2,
            format_args!("{from} udp dport 853 counter reject with icmpx admin-prohibited"),
        );
    }
    if p.families
        .iter()
        .any(|f| !f.clients.is_empty() && !f.blocked.is_empty())
    {
        s.line(
            2,
            "# Kaspersky's prefixes: logged (at most 10 a minute) and dropped.",
        );
    }
    for f in clients().filter(|f| !f.blocked.is_empty()) {
        let from = from_clients(p, f);
        let to = format!("{} daddr @kaspersky_{}", f.nft, f.suffix);
        s.line(
            2,
            format_args!("{from} {to} {LOG_LIMIT} log prefix \"cutoff kaspersky: \""),
        );
        s.line(2, format_args!("{from} {to} counter drop"));
    }
    s.line(1, "}");
}

fn output(p: &Plan<'_>, s: &mut Script) {
    s.line(1, "chain output {");
    s.line(2, "type filter hook output priority filter; policy accept;");
    s.line(2, "# The same prefixes, from this host itself.");
    for f in p.families.iter().filter(|f| !f.blocked.is_empty()) {
        let to = format!("{} daddr @kaspersky_{}", f.nft, f.suffix);
        s.line(
            2,
            format_args!("{to} {LOG_LIMIT} log prefix \"cutoff kaspersky: \""),
        );
        s.line(2, format_args!("{to} counter drop"));
    }
    s.line(1, "}");
}

#[cfg(test)]
mod tests {
    use crate::firewall::tests::config;
    use crate::firewall::{Format, Options, render};

    fn nft(yaml: &str, opts: &Options) -> String {
        render(&config(yaml), Format::Nftables, opts).unwrap()
    }

    const LAN: &str = "listen: ['0.0.0.0:53', '[::]:53']\n";

    #[test]
    fn clients_dns_is_redirected_to_cutoffs_port() {
        let s = nft(LAN, &Options::default());
        assert!(s.contains(
            "\t\tip saddr @clients_v4 meta l4proto { tcp, udp } th dport 53 counter redirect to :53\n"
        ));
        // Only after queries to this host itself have left the chain.
        let local = s.find("fib daddr type local return").unwrap();
        assert!(local < s.find("redirect to").unwrap());
        assert!(s.contains("type nat hook prerouting priority dstnat; policy accept;"));
    }

    #[test]
    fn every_kaspersky_prefix_is_dropped() {
        let c = crate::config::load_default().unwrap();
        let s = render(&c, Format::Nftables, &Options::default()).unwrap();
        let list = c
            .lists
            .iter()
            .find(|l| l.name == "kaspersky-networks")
            .unwrap();
        assert_eq!(list.prefixes.len(), 16);
        let set = &s[s.find("set kaspersky_v4 {").unwrap()..];
        let set = &set[..set.find("\t}\n").unwrap()];
        for p in &list.prefixes {
            assert!(set.contains(&format!("\t\t\t{p}")), "{p} missing");
        }
        for chain in ["forward", "output"] {
            let body = &s[s.find(&format!("chain {chain} {{")).unwrap()..];
            assert!(
                body.contains("ip daddr @kaspersky_v4 counter drop"),
                "{chain}"
            );
            assert!(
                body.contains("log prefix \"cutoff kaspersky: \""),
                "{chain}"
            );
        }
        assert!(!s.contains("kaspersky_v6"));
    }

    #[test]
    fn no_prefix_list_means_no_set() {
        let s = nft(
            &format!(
                "{LAN}lists:\n  k: {{builtin: kaspersky}}\nrules:\n  - {{name: r, lists: [k], action: block}}\n"
            ),
            &Options::default(),
        );
        assert!(s.contains("# No list in the config has prefixes: no address is dropped."));
        assert!(!s.contains("@kaspersky") && !s.contains("set kaspersky"));
        assert!(!s.contains("chain output"));
    }

    #[test]
    fn ipv6_clients_get_ipv6_rules() {
        let s = nft(
            &format!(
                "{LAN}access:\n  allow: ['2001:db8::/32']\nlists:\n  k: {{prefixes: ['2a03:2480::/32']}}\n"
            ),
            &Options::default(),
        );
        assert!(!s.contains("clients_v4") && !s.contains("@kaspersky_v4"));
        for rule in [
            "ip6 saddr @clients_v6 meta l4proto { tcp, udp } th dport 53 counter redirect to :53",
            "ip6 saddr @clients_v6 tcp dport 853 counter reject with tcp reset",
            "ip6 saddr @clients_v6 udp dport 853 counter reject with icmpx admin-prohibited",
            "ip6 saddr @clients_v6 ip6 daddr @kaspersky_v6 counter drop",
            "\t\tip6 daddr @kaspersky_v6 counter drop",
        ] {
            assert!(s.contains(rule), "{rule}");
        }
        // The fallback resolvers are IPv4: counted for IPv4 clients only.
        assert!(!s.contains("@fallback_v4"));
    }

    #[test]
    fn fallback_resolvers_are_counted_before_the_redirect() {
        let s = nft(LAN, &Options::default());
        for r in crate::firewall::FALLBACK_RESOLVERS {
            assert!(s.contains(&format!("\t\t\t{r}")), "{r}");
        }
        let count = s
            .find("ip daddr @fallback_v4 meta l4proto { tcp, udp } th dport 53 counter")
            .unwrap();
        assert!(count < s.find("redirect to").unwrap());
    }

    #[test]
    fn lan_interface_narrows_every_client_rule() {
        let opts = Options {
            lan_interface: Some("eth1".to_owned()),
            ..Options::default()
        };
        let s = nft(LAN, &opts);
        let rules: Vec<&str> = s.lines().filter(|l| l.contains("saddr @clients")).collect();
        assert!(rules.len() >= 6);
        assert!(
            rules
                .iter()
                .all(|l| l.trim_start().starts_with("iifname \"eth1\" ")),
            "{rules:#?}"
        );
    }
}
