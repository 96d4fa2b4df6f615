//! The command line: clap definitions and one file per command.
//!
//! Sits outside the query flow: commands load a config (`config::load`), build
//! a `policy::Snapshot` and either print (`check`, `explain`, `firewall`) or
//! serve. Every command returns its exit code here; `main` only maps errors.

mod admin_url;
mod check;
mod evidence;
mod evidence_doc;
mod explain;
mod export;
mod firewall;
mod lists;
mod records;
mod report;
mod serve;
mod source;
mod status;
mod unclassified;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::explain::{Explanation, explanation};
pub use check::{CheckArgs, summary};
pub use explain::ExplainArgs;
pub use export::ExportArgs;
pub use firewall::FirewallArgs;
pub use lists::ListsArgs;
pub use records::Format;
pub use report::{ReportArgs, aggregate, render};
pub use serve::ServeArgs;
pub use status::StatusArgs;

use crate::config::{self, Config, ConfigError};

/// DNS sinkhole and policy engine for the Kaspersky cut-off.
///
/// cutoff answers DNS for a network. For the names of Kaspersky's update,
/// telemetry and activation services it blocks or only logs the lookup, per
/// client network, from dated cut-offs onward; everything else goes to the
/// upstream resolvers. With no --config it runs the embedded default policy.
#[derive(Debug, Parser)]
#[command(name = "cutoff", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer DNS: block or log what the policy says, forward the rest.
    #[command(
        after_help = "Examples:\n  cutoff serve\n  cutoff serve --config /etc/cutoff/cutoff.yaml\n  cutoff serve --listen 127.0.0.1:5533 --upstream 9.9.9.9 --upstream 149.112.112.112\n\nSignals: HUP reloads the config (an invalid one is logged and the running one kept); TERM and INT stop after in-flight queries finish."
    )]
    Serve(ServeArgs),
    /// Validate a config: exit 0 with a summary, or 1 listing every problem.
    #[command(
        after_help = "Examples:\n  cutoff check\n  cutoff check --config /etc/cutoff/cutoff.yaml"
    )]
    Check(CheckArgs),
    /// Show what the policy does with one name for one client, and why.
    #[command(
        after_help = "Examples:\n  cutoff explain --client 10.1.2.3 s05.upd.kaspersky.com\n  cutoff explain --client 10.1.2.3 --at 2024-09-28T12:00:00-04:00 dnl-01.geo.kaspersky.com\n  cutoff explain --config office.yaml --client 192.168.1.20 --json ksn-file-geo.kaspersky-labs.com"
    )]
    Explain(ExplainArgs),
    /// List, per network, the clients that asked for Kaspersky names: the machines to clean up.
    #[command(
        after_help = "Examples:\n  cutoff report --log /var/log/cutoff/queries.jsonl\n  cutoff report --log queries.jsonl --since 7d --format csv > remediation.csv\n  cutoff report --url http://127.0.0.1:9153 --since 24h --format json\n  cutoff report --verify /var/log/cutoff/queries.jsonl.1 /var/log/cutoff/queries.jsonl"
    )]
    Report(ReportArgs),
    /// Print firewall rules that close the DNS bypass: redirect clients' DNS to cutoff, reject DNS over TLS, drop Kaspersky's prefixes.
    #[command(
        after_help = "Run the output on the cutoff host when it is the network's router; see docs/bypass.md.\n\nExamples:\n  cutoff firewall --format nftables > cutoff.nft && nft -f cutoff.nft\n  cutoff firewall --config /etc/cutoff/cutoff.yaml --format nftables --lan-interface eth1\n  cutoff firewall --format iptables --port 53 > cutoff-firewall.sh && sh cutoff-firewall.sh"
    )]
    Firewall(FirewallArgs),
    /// Write what the policy blocks for one network as an RPZ zone, an Unbound include, a dnsmasq config, a hosts file, a plain list or adblock rules.
    #[command(
        after_help = "Active entries only, decided as serve decides them at --at (default now); names that must pass under a blocked zone (exemptions, overrides) are written as pass-through where the format can say so. See docs/lists.md.\n\nExamples:\n  cutoff export --format rpz > /etc/bind/rpz.cutoff.zone\n  cutoff export --config /etc/cutoff/cutoff.yaml --network staff --format unbound > cutoff.conf\n  cutoff export --format dnsmasq --list kaspersky > /etc/dnsmasq.d/cutoff.conf"
    )]
    Export(ExportArgs),
    /// Print a running server's status: enforcement per network, activity, clients still calling, lists, upstreams.
    #[command(
        after_help = "The same summary as the status page (http://127.0.0.1:9153/ by default) and /api/v1/status.\n\nExamples:\n  cutoff status\n  cutoff status --url http://pi.local:9153\n  cutoff status --config /etc/cutoff/cutoff.yaml --json"
    )]
    Status(StatusArgs),
    /// Download the URL lists of a config once, keep the good ones as last-good copies, print what changed.
    #[command(
        after_help = "Exits 1 when a download failed or was refused (its last-good copy is kept). See docs/lists.md.\n\nExamples:\n  cutoff lists update --config /etc/cutoff/cutoff.yaml"
    )]
    Lists(ListsArgs),
}

/// `--config`, shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file (YAML). Without it, the embedded default policy is used.
    #[arg(long, short = 'c', value_name = "PATH", env = "CUTOFF_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// Loads the config the argument names (or the embedded default).
    pub fn load(&self) -> Result<Config, ConfigError> {
        match &self.config {
            Some(path) => config::load(path),
            None => config::load_default(),
        }
    }
}

/// Runs a parsed command line; the exit code is chosen here.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Firewall(args) => firewall::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Lists(args) => lists::run(&args),
    }
}

/// Prints a config error with every problem, one per line, on stderr.
pub fn print_config_error(e: &ConfigError) {
    eprintln!("error: {e}");
    if let ConfigError::Invalid {
        problems, warnings, ..
    } = e
    {
        for p in problems {
            eprintln!("  {p}");
        }
        if !warnings.is_empty() {
            eprintln!("warnings ({}):", warnings.len());
            for w in warnings {
                eprintln!("  {w}");
            }
        }
    }
}
