//! `cutoff firewall`: print the packet-filter rules for a config.

use std::process::ExitCode;

use super::{ConfigArg, print_config_error};
use crate::firewall::{self, Format, Options};

/// Arguments of `cutoff firewall`.
#[derive(Debug, clap::Args)]
pub struct FirewallArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The packet filter to write rules for.
    #[arg(long, value_enum)]
    format: Format,
    /// The port cutoff answers on [default: the port of the first
    /// non-loopback listen address, else of the first listen address].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// Redirect and filter only traffic arriving on this interface (the LAN side).
    #[arg(long, value_name = "IFACE")]
    lan_interface: Option<String>,
}

pub(super) fn run(args: &FirewallArgs) -> anyhow::Result<ExitCode> {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(e) => {
            print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = Options {
        dns_port: args.port,
        lan_interface: args.lan_interface.clone(),
    };
    match firewall::render(&config, args.format, &opts) {
        Ok(script) => {
            // The script carries the warnings too; stderr makes sure they are
            // seen when it is redirected straight into a file.
            for w in firewall::warnings(&config, &opts)? {
                eprintln!("warning: {w}");
            }
            print!("{script}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
