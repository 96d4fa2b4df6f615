//! `cutoff firewall`: packet-filter rules for what a DNS sinkhole cannot
//! stop by itself.
//!
//! Sits outside the query flow: a command that reads a validated [`Config`]
//! and prints a script for the host that routes the clients' traffic.
//! Nothing here touches the kernel; the admin reads the script and applies
//! it. Both formats do the same four things:
//!
//! 1. clients' DNS (udp and tcp 53) to any address that is not this host is
//!    redirected to cutoff's port, so the fallback of Kaspersky products to
//!    public resolvers is answered by cutoff;
//! 2. DNS over TLS and over QUIC (853) from clients is rejected;
//! 3. traffic to the prefixes of the config's address lists is logged and
//!    dropped, from clients and from this host;
//! 4. DNS to the public resolvers the products fall back to is counted and
//!    logged (rule 1 already redirects it).
//!
//! `docs/bypass.md` says what these add to the sinkhole and what they miss.

mod iptables;
mod nftables;
mod plan;

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use crate::config::Config;
use plan::Plan;

/// The public resolvers Kaspersky products query over plain DNS, in this
/// order, when the system resolver fails them (Google, Cloudflare, Alibaba,
/// Quad9, CleanBrowsing).
pub const FALLBACK_RESOLVERS: [Ipv4Addr; 5] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(1, 1, 1, 1),
    Ipv4Addr::new(223, 6, 6, 6),
    Ipv4Addr::new(9, 9, 9, 9),
    Ipv4Addr::new(185, 228, 168, 168),
];

/// The packet filter the rules are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One `table inet cutoff` for `nft -f`, replaced atomically.
    Nftables,
    /// A POSIX sh script of `iptables` and `ip6tables` commands.
    Iptables,
}

/// Choices the config does not make.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The port cutoff answers on. Default: the port of the first
    /// non-loopback listen address, else of the first listen address.
    pub dns_port: Option<u16>,
    /// Only traffic arriving on this interface is redirected and filtered.
    pub lan_interface: Option<String>,
}

/// Why no rules could be written.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `listen` is empty and no port was given.
    #[error("the config has no listen address: give the port cutoff answers on with --port")]
    NoListen,
    /// The port is 0.
    #[error("port 0 is not a port clients can be redirected to: give cutoff's port with --port")]
    PortZero,
    /// Nothing outside loopback is allowed to use the resolver.
    #[error(
        "access.allow holds no client outside loopback (after access.deny): there is no traffic to redirect"
    )]
    NoClients,
    /// The interface name would not survive the script.
    #[error("`{name}` is not an interface name: 1 to 15 letters, digits, `.`, `_` or `-`")]
    Interface {
        /// The name given.
        name: String,
    },
    /// A list holds a prefix that is not a CIDR.
    #[error("list `{list}`: `{prefix}` is not a CIDR")]
    Prefix {
        /// The list.
        list: String,
        /// The text.
        prefix: String,
    },
}

/// Renders the rules for `config` in `format`. Deterministic: the same
/// config and options give the same bytes (no time, no host name).
pub fn render(config: &Config, format: Format, opts: &Options) -> Result<String, FirewallError> {
    let plan = Plan::new(config, opts)?;
    Ok(match format {
        Format::Nftables => nftables::render(&plan),
        Format::Iptables => iptables::render(&plan),
    })
}

/// What the rules would get wrong on this config: printed in the script's
/// header and by the command on stderr.
pub fn warnings(config: &Config, opts: &Options) -> Result<Vec<String>, FirewallError> {
    Ok(Plan::new(config, opts)?.warnings)
}

/// A script being written, one line at a time, indented with tabs.
#[derive(Default)]
struct Script(String);

impl Script {
    fn line(&mut self, depth: usize, text: impl fmt::Display) {
        for _ in 0..depth {
            self.0.push('\t');
        }
        let _ = writeln!(self.0, "{text}");
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    /// `text` as comment lines of at most 78 columns.
    fn wrapped(&mut self, first: &str, rest: &str, text: &str) {
        let mut line = first.to_owned();
        for word in text.split_whitespace() {
            if line.len() + word.len() >= 78 && line.len() > rest.len() {
                self.line(0, line.trim_end());
                line = rest.to_owned();
            }
            line.push_str(word);
            line.push(' ');
        }
        self.line(0, line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config from YAML; relative paths from the crate root.
    pub(super) fn config(yaml: &str) -> Config {
        crate::config::from_str(yaml, "test", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn nothing_to_redirect_is_an_error() {
        let c = config("access:\n  allow: [127.0.0.0/8, '::1/128']\n");
        let e = render(&c, Format::Nftables, &Options::default()).unwrap_err();
        assert!(matches!(e, FirewallError::NoClients), "{e}");
    }

    #[test]
    fn interface_names_that_would_break_the_script_are_refused() {
        let c = config("listen: ['0.0.0.0:53']\n");
        for bad in ["", "eth0\" accept", "a-very-long-interface", "eth 0"] {
            let opts = Options {
                lan_interface: Some(bad.to_owned()),
                ..Options::default()
            };
            let e = render(&c, Format::Iptables, &opts).unwrap_err();
            assert!(matches!(e, FirewallError::Interface { .. }), "{bad}: {e}");
        }
    }
}
