//! `cutoff check`: validate a config and summarise what it will do now.

use std::fmt::Write as _;
use std::process::ExitCode;

use jiff::Timestamp;

use super::{ConfigArg, print_config_error};
use crate::config::Config;
use crate::policy::rule_at;

/// Arguments of `cutoff check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    match args.config.load() {
        Ok(config) => {
            print!("{}", summary(&config, Timestamp::now()));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            print_config_error(&e);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The summary `check` prints for a valid config, as of `now`.
pub fn summary(c: &Config, now: Timestamp) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "config {}: OK (version {})", c.origin, c.version);
    let listen: Vec<String> = c.listen.iter().map(ToString::to_string).collect();
    let ups: Vec<String> = c.upstreams.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "listen     {}", listen.join(", "));
    let _ = writeln!(s, "upstreams  {}", ups.join(", "));
    let allow: Vec<String> = c.access.allow.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        s,
        "access     allow {} ({} others)",
        allow.join(" "),
        match c.access.denied {
            crate::config::Denied::Refuse => "refuse",
            crate::config::Denied::Drop => "drop",
        }
    );
    let _ = writeln!(s, "\nnetworks ({}):", c.networks.len());
    for n in &c.networks {
        if n.cidrs.is_empty() {
            let _ = writeln!(s, "  {:<20} every other allowed client", n.name);
        } else {
            let cidrs: Vec<String> = n.cidrs.iter().map(ToString::to_string).collect();
            let _ = writeln!(s, "  {:<20} {}", n.name, cidrs.join(" "));
        }
    }
    let _ = writeln!(s, "\nlists ({}):", c.lists.len());
    for l in &c.lists {
        let version = l
            .version
            .as_deref()
            .map(|v| format!(" version {v}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<20} {}{}: {} active, {} disabled, {} duplicate, {} bad line(s)",
            l.name,
            l.source,
            version,
            l.active_total(),
            l.disabled,
            l.duplicates,
            l.problems.count
        );
        let cats: Vec<String> = l
            .active_by_category()
            .into_iter()
            .map(|(cat, n)| format!("{} {n}", cat.map_or("uncategorised", |c| c.as_str())))
            .collect();
        let _ = writeln!(s, "  {:<20} {}", "", cats.join(", "));
    }
    let _ = writeln!(s, "\nrules ({}), phase at {now}:", c.rules.len());
    for r in &c.rules {
        let nets = match &r.networks {
            None => "all networks".to_owned(),
            Some(ids) => ids
                .iter()
                .map(|&i| c.networks[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let lists: Vec<&str> = r.lists.iter().map(|&i| c.lists[i].name.as_str()).collect();
        let cats = r
            .categories
            .as_ref()
            .map(|cs| {
                format!(
                    " [{}]",
                    cs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
            .unwrap_or_default();
        let (now_action, phase) = rule_at(r, now);
        let timeline = timeline(r);
        let _ = writeln!(s, "  {:<20} {nets}: {}{cats}", r.name, lists.join(", "));
        let _ = writeln!(
            s,
            "  {:<20} {timeline}; now: {} ({})",
            "",
            now_action.map_or("does not apply", |a| a.as_str()),
            phase.as_str()
        );
    }
    let _ = writeln!(
        s,
        "\nblocked answer: {} (ttl {}s)",
        c.blocking.answer.as_str(),
        c.blocking.ttl
    );
    if !c.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings ({}):", c.warnings.len());
        for w in &c.warnings {
            let _ = writeln!(s, "  {w}");
        }
    }
    s
}

/// A rule's actions over time in words, e.g. "log before X, block from then on".
fn timeline(r: &crate::config::Rule) -> String {
    let before = |at: &str| match r.before {
        Some(b) => format!("{} before {at}, ", b.as_str()),
        None => format!("nothing before {at}, "),
    };
    let after = match r.after {
        Some(a) => format!(", then {}", a.as_str()),
        None => ", then nothing".to_owned(),
    };
    let action = r.action.as_str();
    match (&r.from_text, &r.until_text) {
        (None, None) => action.to_owned(),
        (Some(f), None) => format!("{}{action} from then on", before(f)),
        (Some(f), Some(u)) => format!("{}{action} until {u}{after}", before(f)),
        (None, Some(u)) => format!("{action} until {u}{after}"),
    }
}
