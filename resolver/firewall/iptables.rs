//! The rules as a POSIX sh script of `iptables` and `ip6tables` commands:
//! no ipset, one rule per prefix, in chains of cutoff's own that a re-run
//! (or `remove`) takes out first.
//!
//! Chains, in both families: nat `CUTOFF-NAT` (from PREROUTING: which
//! packets are clients' DNS) → `CUTOFF-DNS` (count the fallback resolvers in
//! `CUTOFF-FALLBACK`, then redirect); filter `CUTOFF-FWD` (from FORWARD:
//! which packets are clients') → `CUTOFF-CLIENT` (853, prefixes) →
//! `CUTOFF-DROP` (log, drop); `CUTOFF-OUT` (from OUTPUT) → `CUTOFF-DROP`.

use super::Script;
use super::plan::{Family, Plan};

/// Rate of the log rules: enough to see who, not enough to flood the log.
const LOG_LIMIT: &str = "-m limit --limit 10/minute --limit-burst 5";

/// Shell functions and the clean-up every run starts with.
const PRELUDE: &str = r#"set -eu

# unhook TOOL TABLE BUILTIN CHAIN: delete every jump from BUILTIN to CHAIN,
# whatever its matches (an earlier run may have used another interface).
unhook() {
	"$1" -t "$2" -S "$3" 2>/dev/null | grep -e " -j $4\$" | sed 's/^-A /-D /' |
		while read -r rule; do
			# `iptables -S` prints these rules unquoted: split the words.
			# shellcheck disable=SC2086
			"$1" -t "$2" $rule
		done
}

# chain TOOL TABLE CHAIN: create CHAIN, or empty it when it exists.
chain() {
	"$1" -t "$2" -N "$3" 2>/dev/null || "$1" -t "$2" -F "$3"
}

# purge TOOL TABLE CHAIN: empty and delete CHAIN, if it exists.
purge() {
	"$1" -t "$2" -F "$3" 2>/dev/null || true
	"$1" -t "$2" -X "$3" 2>/dev/null || true
}

# First take out whatever an earlier run put in, so that a changed config or
# interface leaves nothing stale behind. Parents before the chains they use.
for tool in iptables ip6tables; do
	command -v "$tool" >/dev/null || continue
	unhook "$tool" nat PREROUTING CUTOFF-NAT
	unhook "$tool" filter FORWARD CUTOFF-FWD
	unhook "$tool" filter OUTPUT CUTOFF-OUT
	for c in CUTOFF-NAT CUTOFF-DNS CUTOFF-FALLBACK; do purge "$tool" nat "$c"; done
	for c in CUTOFF-FWD CUTOFF-OUT CUTOFF-CLIENT CUTOFF-DROP; do purge "$tool" filter "$c"; done
done
if [ "${1:-}" = remove ]; then
	exit 0
fi"#;

pub(super) fn render(p: &Plan<'_>) -> String {
    let mut s = Script::default();
    s.line(0, "#!/bin/sh");
    p.header(
        &mut s,
        "iptables",
        &[
            "Check:   sh -n FILE",
            "Apply:   sh FILE          (as root; running it again replaces the rules)",
            "Remove:  sh FILE remove",
            "Counters: iptables -t nat -L CUTOFF-DNS -v -n; iptables -L CUTOFF-CLIENT -v -n",
            "Unlike nft -f this is not atomic: for a moment while it runs, clients'",
            "traffic passes unfiltered.",
        ],
    );
    s.blank();
    s.line(0, PRELUDE);
    for f in &p.families {
        s.blank();
        family(p, f, &mut s);
    }
    s.0
}

fn family(p: &Plan<'_>, f: &Family, s: &mut Script) {
    let t = f.tool;
    let name = if f.suffix == "v4" { "IPv4" } else { "IPv6" };
    if f.clients.is_empty() && f.blocked.is_empty() {
        s.line(
            0,
            format_args!("# {name}: no clients and no prefixes, so no rules."),
        );
        return;
    }
    s.line(0, format_args!("# {name} ({t})"));
    let iface = p.interface.map(|i| format!(" -i {i}")).unwrap_or_default();
    let blocked = !f.blocked.is_empty();
    if !f.clients.is_empty() {
        s.blank();
        for c in ["CUTOFF-NAT", "CUTOFF-DNS"] {
            s.line(0, format_args!("chain {t} nat {c}"));
        }
        s.line(
            0,
            "# Prerouting sees what arrives at this host, never what it sends:",
        );
        s.line(
            0,
            "# cutoff's own upstream queries leave through OUTPUT and are not",
        );
        s.line(
            0,
            "# redirected. Queries addressed to this host go where they were sent.",
        );
        s.line(
            0,
            format_args!("{t} -t nat -A CUTOFF-NAT -m addrtype --dst-type LOCAL -j RETURN"),
        );
        s.line(0, "# Clients: access.allow minus loopback and access.deny.");
        for c in &f.clients {
            for proto in ["udp", "tcp"] {
                s.line(
                    0,
                    format_args!(
                        "{t} -t nat -A CUTOFF-NAT -s {c} -p {proto} --dport 53 -j CUTOFF-DNS"
                    ),
                );
            }
        }
        if !f.fallback.is_empty() {
            s.line(
                0,
                "# The public resolvers Kaspersky products fall back to need no rule of",
            );
            s.line(
                0,
                "# their own: the redirect below takes all outbound DNS. These count",
            );
            s.line(
                0,
                "# (first packet of each flow) and log the attempts for the SOC.",
            );
            s.line(0, format_args!("chain {t} nat CUTOFF-FALLBACK"));
            for r in &f.fallback {
                s.line(
                    0,
                    format_args!("{t} -t nat -A CUTOFF-DNS -d {r} -j CUTOFF-FALLBACK"),
                );
            }
            s.line(
                0,
                format_args!("{t} -t nat -A CUTOFF-FALLBACK {LOG_LIMIT} -j LOG --log-prefix \"cutoff fallback: \""),
            );
        }
        for proto in ["udp", "tcp"] {
            s.line(
                0,
                format_args!(
                    "{t} -t nat -A CUTOFF-DNS -p {proto} -j REDIRECT --to-ports {}",
                    p.port
                ),
            );
        }
        s.blank();
        for c in ["CUTOFF-FWD", "CUTOFF-CLIENT"] {
            s.line(0, format_args!("chain {t} filter {c}"));
        }
        for c in &f.clients {
            s.line(
                0,
                format_args!("{t} -t filter -A CUTOFF-FWD -s {c} -j CUTOFF-CLIENT"),
            );
        }
        s.line(
            0,
            "# DNS over TLS (tcp 853) and over QUIC (udp 853) would pass cutoff by;",
        );
        s.line(
            0,
            "# refused, clients fall back to plain DNS, which is redirected.",
        );
        s.line(
            0,
            format_args!("{t} -t filter -A CUTOFF-CLIENT -p tcp --dport 853 -j REJECT --reject-with tcp-reset"),
        );
        s.line(
            0,
            format_args!(
                "{t} -t filter -A CUTOFF-CLIENT -p udp --dport 853 -j REJECT --reject-with {}",
                f.reject_udp
            ),
        );
    }
    if blocked {
        s.blank();
        s.line(
            0,
            "# Kaspersky's announced prefixes (the config's address lists), dropped",
        );
        s.line(
            0,
            "# whatever action the config's rules give the list, from clients and from",
        );
        s.line(
            0,
            "# this host. They also carry Kaspersky's mail relays and web sites.",
        );
        for c in ["CUTOFF-DROP", "CUTOFF-OUT"] {
            s.line(0, format_args!("chain {t} filter {c}"));
        }
        s.line(
            0,
            format_args!("{t} -t filter -A CUTOFF-DROP {LOG_LIMIT} -j LOG --log-prefix \"cutoff kaspersky: \""),
        );
        s.line(0, format_args!("{t} -t filter -A CUTOFF-DROP -j DROP"));
        let from = if f.clients.is_empty() {
            &["CUTOFF-OUT"][..]
        } else {
            &["CUTOFF-CLIENT", "CUTOFF-OUT"][..]
        };
        for chain in from {
            for b in &f.blocked {
                s.line(
                    0,
                    format_args!("{t} -t filter -A {chain} -d {b} -j CUTOFF-DROP"),
                );
            }
        }
    } else if p.lists.is_empty() {
        s.line(
            0,
            "# No list in the config has prefixes: no address is dropped.",
        );
    }
    s.blank();
    s.line(
        0,
        "# Hooked in last, so traffic only ever meets complete chains.",
    );
    if !f.clients.is_empty() {
        s.line(
            0,
            format_args!("{t} -t nat -I PREROUTING 1{iface} -j CUTOFF-NAT"),
        );
        s.line(
            0,
            format_args!("{t} -t filter -I FORWARD 1{iface} -j CUTOFF-FWD"),
        );
    }
    if blocked {
        s.line(0, format_args!("{t} -t filter -I OUTPUT 1 -j CUTOFF-OUT"));
    }
}

#[cfg(test)]
mod tests {
    use crate::firewall::tests::config;
    use crate::firewall::{Format, Options, render};

    const PREFIXES: &str = "lists:\n  kn: {builtin: kaspersky-networks}\n";

    fn sh(yaml: &str, opts: &Options) -> String {
        render(&config(yaml), Format::Iptables, opts).unwrap()
    }

    #[test]
    fn every_prefix_is_dropped_from_clients_and_from_this_host() {
        let s = sh(
            &format!("listen: ['0.0.0.0:53']\n{PREFIXES}"),
            &Options::default(),
        );
        for chain in ["CUTOFF-CLIENT", "CUTOFF-OUT"] {
            let n = s
                .lines()
                .filter(|l| l.starts_with(&format!("iptables -t filter -A {chain} -d ")))
                .count();
            assert_eq!(n, 16, "{chain}");
        }
        assert!(s.contains("iptables -t nat -A CUTOFF-DNS -p udp -j REDIRECT --to-ports 53\n"));
        assert!(s.contains("ip6tables -t filter -A CUTOFF-CLIENT -p udp --dport 853 -j REJECT --reject-with icmp6-adm-prohibited\n"));
    }

    #[test]
    fn lan_interface_goes_on_the_hooks_but_not_on_output() {
        let opts = Options {
            lan_interface: Some("br-lan".to_owned()),
            dns_port: Some(5533),
        };
        let s = sh(&format!("listen: ['0.0.0.0:5533']\n{PREFIXES}"), &opts);
        assert!(s.contains("iptables -t nat -I PREROUTING 1 -i br-lan -j CUTOFF-NAT\n"));
        assert!(s.contains("iptables -t filter -I FORWARD 1 -i br-lan -j CUTOFF-FWD\n"));
        assert!(s.contains("iptables -t filter -I OUTPUT 1 -j CUTOFF-OUT\n"));
    }

    #[test]
    fn a_family_with_no_clients_and_no_prefixes_gets_no_rules() {
        let s = sh(
            "listen: ['0.0.0.0:53']\naccess:\n  allow: [10.0.0.0/8]\n",
            &Options::default(),
        );
        assert!(s.contains("# IPv6: no clients and no prefixes, so no rules."));
        assert!(
            !s.lines()
                .any(|l| l.starts_with("ip6tables ") || l.starts_with("chain ip6tables"))
        );
        // The clean-up still covers both, for an earlier run with IPv6 rules.
        assert!(s.contains("for tool in iptables ip6tables; do"));
    }
}
