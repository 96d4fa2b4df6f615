//! `cutoff export`: write what the policy blocks for one network at one
//! instant, for BIND, Unbound, dnsmasq, hosts files and adblock lists.

use std::process::ExitCode;

use jiff::Timestamp;

use super::{ConfigArg, print_config_error};
use crate::export::{self, Format, Selection};
use crate::policy::Snapshot;

/// Arguments of `cutoff export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The format to write.
    #[arg(long, value_enum)]
    format: Format,
    /// Only this list (repeatable) [default: every list of the network's rules].
    #[arg(long = "list", value_name = "NAME")]
    lists: Vec<String>,
    /// The network whose policy is written.
    #[arg(long, value_name = "NAME", default_value = "default")]
    network: String,
    /// The instant to decide at, RFC 3339 with an offset [default: now].
    #[arg(long, value_name = "RFC3339")]
    at: Option<Timestamp>,
}

pub(super) fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => {
            print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    let snapshot = Snapshot::new(config);
    let sel = Selection {
        network: Some(args.network.clone()),
        lists: args.lists.clone(),
    };
    let at = args.at.unwrap_or_else(Timestamp::now);
    match export::plan(&snapshot, &sel, at) {
        Ok(e) => {
            for p in &e.patterns {
                eprintln!(
                    "warning: pattern entry {p} blocks names that {} cannot express; left out",
                    args.format.as_str()
                );
            }
            print!("{}", export::formats_render(&e, args.format));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
