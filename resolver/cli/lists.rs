//! `cutoff lists update`: download every URL list of a config once, store
//! the good ones as last-good copies and print what changed. For cron, for
//! a first download before `serve` (a `required` list), and for tests.
//! Outside the query flow: a running `serve` refreshes on its own and
//! picks up copies stored by this command at its next reload.

use std::process::ExitCode;

use super::{ConfigArg, print_config_error};
use crate::blocklist::changes;
use crate::blocklist::lastgood::Outcome;
use crate::refresh::Download;

/// Names shown of those added or removed; the rest are counted.
const SHOWN: usize = 5;

/// Arguments of `cutoff lists`.
#[derive(Debug, clap::Args)]
pub struct ListsArgs {
    /// What to do with the lists.
    #[command(subcommand)]
    command: ListsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ListsCommand {
    /// Download every URL list once, keep the good ones, print what changed.
    Update {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub(super) fn run(args: &ListsArgs) -> anyhow::Result<ExitCode> {
    let ListsCommand::Update { config } = &args.command;
    let config = match config.load() {
        Ok(c) => c,
        Err(e) => {
            print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    let lists = crate::refresh::url_lists(&config);
    if lists.is_empty() {
        println!("no URL lists in {}", config.origin);
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = 0usize;
    let mut updated = 0usize;
    for (name, download) in &lists {
        let source = download.source();
        let entries = || match download {
            Download::List(u) => changes::url_copy(u),
            Download::Feed(f) => changes::feed_copy(f),
        };
        let before = entries();
        let outcome = rt.block_on(download.update());
        let line = match &outcome {
            Outcome::Updated {
                entries,
                was: Some(was),
            } => format!("updated: {entries} entries (was {was})"),
            Outcome::Updated { entries, was: None } => {
                format!("updated: {entries} entries (first copy)")
            }
            Outcome::Unchanged { entries } => format!("unchanged: {entries} entries"),
            Outcome::Failed(e) => format!("failed, last-good copy kept: {e}"),
            Outcome::Rejected(e) => format!("refused, last-good copy kept: {e}"),
            Outcome::Store(e) => format!(
                "cannot store {}: {e}; last-good copy kept",
                source.copy.display()
            ),
        };
        if outcome.changed() {
            updated += 1;
        }
        if !outcome.succeeded() {
            failed += 1;
        }
        println!("{name}: {line}");
        if outcome.changed() {
            let (added, removed) = changes::diff(&before, &entries());
            let lines = [
                changes::describe('+', "added", &added, SHOWN),
                changes::describe('-', "removed", &removed, SHOWN),
            ];
            for l in lines.into_iter().flatten() {
                println!("  {l}");
            }
        }
    }
    if updated > 0 {
        println!("a running cutoff serves the new copies from its next reload (SIGHUP) or refresh");
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
