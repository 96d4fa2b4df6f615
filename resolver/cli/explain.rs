//! `cutoff explain`: the decision for one client, name and instant, and why.
//! The decision and its text come from [`crate::explain`], which the status
//! page's explain form calls too.

use std::net::IpAddr;
use std::process::ExitCode;

use super::print_config_error;
use super::source::InspectedConfig;
use crate::explain;
use crate::policy::Snapshot;
use jiff::Timestamp;

/// Arguments of `cutoff explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    config: InspectedConfig,
    /// The client's address (IPv4 or IPv6).
    #[arg(long, value_name = "IP")]
    client: IpAddr,
    /// The instant to decide at, RFC 3339 with an offset (default: now).
    #[arg(long, value_name = "RFC3339")]
    at: Option<Timestamp>,
    /// An address the answer would carry (repeatable): response-address
    /// rules are checked against it as `serve` checks upstream answers.
    #[arg(long = "answer", value_name = "IP")]
    answers: Vec<IpAddr>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The name being looked up.
    name: String,
}

pub(super) fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => {
            print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    // The temporary allows `serve` keeps under `state_dir`, as it applies
    // them (a file this user cannot read is said, and left out).
    let allows = match crate::allows::read(&config.serve.state_dir.join(crate::allows::FILE)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("warning: temporary allows left out: {e}");
            Vec::new()
        }
    };
    let snapshot = Snapshot::new(config);
    let at = args.at.unwrap_or_else(Timestamp::now);
    let e = match explain::explain_with(
        &snapshot,
        args.client,
        &args.name,
        at,
        &args.answers,
        &allows,
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&e)?);
    } else {
        print!("{}", explain::text(&snapshot, &e));
    }
    Ok(ExitCode::SUCCESS)
}
