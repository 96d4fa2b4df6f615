//! `cutoff check`: validate a config and summarise what it will do now.

use std::fmt::Write as _;
use std::process::ExitCode;

use jiff::Timestamp;

use super::print_config_error;
use super::source::InspectedConfig;
use crate::config::{AnswerMode, Config, Denied};
use crate::networks::DEFAULT_NETWORK;
use crate::policy::rule_at;

/// Arguments of `cutoff check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: InspectedConfig,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    match args.config.load() {
        Ok(config) => {
            // The token files are read here as `serve` reads them, so a
            // missing, empty or world-readable one fails the check.
            if let Err(e) = config.admin.tokens() {
                eprintln!("error: {}: http: {e}", config.origin);
                return Ok(ExitCode::FAILURE);
            }
            print!("{}", summary(&config, Timestamp::now()));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            print_config_error(&e);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A URL list's refresh interval and the age of its copy (never fetched).
fn url_state(u: &crate::blocklist::UrlSource) -> String {
    let secs = u.refresh.as_secs();
    let every = match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    let copy = match crate::blocklist::lastgood::meta(u).filter(|_| u.copy.is_file()) {
        Some(m) => match Timestamp::from_second(m.checked) {
            Ok(t) => format!("last-good copy checked at {t}"),
            Err(_) => "last-good copy present".to_owned(),
        },
        None => "no last-good copy yet".to_owned(),
    };
    format!("refresh every {every}; {copy}")
}

/// The summary `check` prints for a valid config, as of `now`.
pub fn summary(c: &Config, now: Timestamp) -> String {
    let join =
        |items: &mut dyn Iterator<Item = String>, sep: &str| items.collect::<Vec<_>>().join(sep);
    // One column width for every name, so long rule names stay aligned.
    let w = c
        .networks
        .iter()
        .map(|n| n.name.len())
        .chain(c.lists.iter().map(|l| l.name.len()))
        .chain(c.rules.iter().map(|r| r.name.len()))
        .max()
        .unwrap_or(0)
        .max(12);
    let mut s = String::new();
    let _ = writeln!(s, "config {}: OK (version {})", c.origin, c.version);
    let _ = writeln!(
        s,
        "listen     {}",
        join(&mut c.listen.iter().map(ToString::to_string), ", ")
    );
    let _ = writeln!(
        s,
        "upstreams  {}",
        join(&mut c.upstreams.iter().map(ToString::to_string), ", ")
    );
    let _ = writeln!(s, "http       {}", c.http);
    if let Some(t) = &c.admin.token_file {
        let _ = writeln!(
            s,
            "writes     bearer token from {}; temporary allows up to {}",
            t.display(),
            crate::allows::show(&c.admin.max_allow)
        );
    }
    if let Some(t) = &c.admin.read_token_file {
        let _ = writeln!(s, "reads      bearer token from {}", t.display());
    }
    let q = &c.query_log;
    let log = match &q.path {
        None => "off".to_owned(),
        Some(p) => format!(
            "{p} ({} queries, clients {})",
            match q.events {
                crate::config::LogEvents::All => "all",
                crate::config::LogEvents::Matched => "log and block",
            },
            match q.client {
                crate::config::ClientMode::Full => "full",
                crate::config::ClientMode::Truncate => "truncated",
                crate::config::ClientMode::Hash => "hashed",
            }
        ),
    };
    let _ = writeln!(s, "query log  {log}");
    let denied = match c.access.denied {
        Denied::Refuse => "refused",
        Denied::Drop => "dropped",
    };
    let _ = writeln!(
        s,
        "access     allow {}",
        join(&mut c.access.allow.iter().map(ToString::to_string), " ")
    );
    if !c.access.deny.is_empty() {
        let _ = writeln!(
            s,
            "           deny {}",
            join(&mut c.access.deny.iter().map(ToString::to_string), " ")
        );
    }
    let _ = writeln!(s, "           other clients are {denied}");
    let _ = writeln!(s, "\nnetworks ({}):", c.networks.len());
    for n in &c.networks {
        let what = if n.name == DEFAULT_NETWORK {
            "every allowed client in no other network".to_owned()
        } else if n.cidrs.is_empty() {
            "no CIDRs: no client is in it".to_owned()
        } else {
            join(&mut n.cidrs.iter().map(ToString::to_string), " ")
        };
        let _ = writeln!(s, "  {:<w$} {what}", n.name);
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
            "  {:<w$} {}{version}: {} active, {} disabled, {} duplicate, {} bad line(s)",
            l.name,
            l.source,
            l.active_total(),
            l.disabled,
            l.duplicates,
            l.problems.count
        );
        let cats = join(
            &mut l
                .active_by_category()
                .into_iter()
                .map(|(cat, n)| format!("{} {n}", cat.map_or("uncategorised", |c| c.as_str()))),
            ", ",
        );
        if let crate::blocklist::Source::Url(u) = &l.source {
            let _ = writeln!(s, "  {:<w$} {}", "", url_state(u));
        } else {
            let _ = writeln!(s, "  {:<w$} {cats}", "");
        }
    }
    let _ = writeln!(s, "\nrules ({}), phase at {now}:", c.rules.len());
    for r in &c.rules {
        let nets = match &r.networks {
            None => "all networks".to_owned(),
            Some(ids) => join(&mut ids.iter().map(|&i| c.networks[i].name.clone()), ", "),
        };
        let lists = join(&mut r.lists.iter().map(|&i| c.lists[i].name.clone()), ", ");
        let cats = r
            .categories
            .as_ref()
            .map(|cs| {
                format!(
                    " [{}]",
                    join(&mut cs.iter().map(|c| c.as_str().to_owned()), ", ")
                )
            })
            .unwrap_or_default();
        let (now_action, phase) = rule_at(r, now);
        let _ = writeln!(s, "  {:<w$} {nets}: {lists}{cats}", r.name);
        let answer = r
            .answer
            .map(|a| format!(" (answered {})", a.as_str()))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<w$} {}{answer}; now: {} ({})",
            "",
            timeline(r),
            now_action.map_or("does not apply", |a| a.as_str()),
            phase.as_str()
        );
    }
    let b = &c.blocking;
    let sinkhole = if b.answer == AnswerMode::Sinkhole {
        format!(", A {} AAAA {}", b.sinkhole_ipv4, b.sinkhole_ipv6)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "\nblocked answer: {} (ttl {}s{sinkhole})",
        b.answer.as_str(),
        b.ttl
    );
    if !c.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings ({}):", c.warnings.len());
        for warning in &c.warnings {
            let _ = writeln!(s, "  {warning}");
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
