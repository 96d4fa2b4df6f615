//! `cutoff status`: the status page's summary in a terminal, read from a
//! running server's `/api/v1/status` (`--url`, or the `http` address of the
//! config `check` would read). Outside the query flow.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::admin_url;
use super::source::InspectedConfig;
use crate::http::Status;
use crate::http::status::Activity;

/// Arguments of `cutoff status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// A running server's admin endpoint, e.g. http://127.0.0.1:9153.
    /// Without it: the `http` address of the config (as for `check`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    #[command(flatten)]
    config: InspectedConfig,
    /// Print the JSON of /api/v1/status instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => match admin_url::default_url(&args.config, "the status", "", "no --url given") {
            Some(url) => url,
            None => return Ok(ExitCode::FAILURE),
        },
    };
    let body = match admin_url::get(&url, "/api/v1/status") {
        Ok(body) => body,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let status: Status = match serde_json::from_str(&body) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {url}: not a status summary: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn activity_line(o: &mut String, span: &str, a: &Activity) {
    if a.categories.is_empty() {
        let _ = writeln!(o, "  {span:<9} no lookup of a listed name");
    }
    for c in &a.categories {
        let _ = writeln!(
            o,
            "  {span:<9} {:<11} blocked {}, logged {}, allowed {}",
            c.category, c.blocked, c.logged, c.allowed
        );
    }
}

/// The summary as `cutoff status` prints it.
fn text(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cutoff {} at {}: config {} ({})",
        s.version, s.now, s.config_version, s.config_origin
    );
    let _ = writeln!(o, "networks:");
    for n in &s.networks {
        let state = if n.enforcing {
            "enforcing"
        } else {
            "not enforcing"
        };
        let _ = writeln!(o, "  {:<12} {state}", n.name);
        for r in &n.rules {
            let when = match (&r.from, &r.until) {
                (Some(f), Some(u)) => format!(", {} from {f} until {u}", r.action),
                (Some(f), None) => format!(", {} from {f}", r.action),
                (None, Some(u)) => format!(", {} until {u}", r.action),
                (None, None) => String::new(),
            };
            let now = r.action_now.as_deref().unwrap_or("does not apply");
            let _ = writeln!(o, "    {:<20} {now} (phase {}{when})", r.name, r.phase);
        }
    }
    let _ = writeln!(o, "activity of listed names:");
    activity_line(&mut o, "last hour", &s.last_hour);
    activity_line(&mut o, "last 24 h", &s.last_day);
    let _ = writeln!(o, "clients still calling (24 h): {}", s.clients_total);
    for c in &s.clients {
        let _ = writeln!(
            o,
            "  {:<12} {:<20} last {}  {}  {} lookups ({} blocked, {} logged)",
            c.network,
            c.client,
            c.last_seen,
            c.categories.join(","),
            c.count,
            c.blocked,
            c.logged
        );
    }
    let _ = writeln!(o, "lists:");
    for l in &s.lists {
        let version = l.version.as_deref().unwrap_or("no version");
        let refreshed = l
            .last_refresh
            .map(|t| format!(", refreshed {t}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<20} {version}, {} entries{refreshed}",
            l.name, l.entries
        );
    }
    if !s.temporary_allows.is_empty() {
        let _ = writeln!(o, "temporary allows:");
    }
    for a in &s.temporary_allows {
        let on = a
            .network
            .as_deref()
            .unwrap_or("every network that permits it");
        let _ = writeln!(o, "  {:<30} on {on} until {}", a.name, a.until);
    }
    let _ = writeln!(o, "upstreams:");
    for u in &s.upstreams {
        let rtt = u
            .rtt_ms
            .map_or_else(|| "not measured yet".to_owned(), |r| format!("{r} ms"));
        let _ = writeln!(o, "  {:<30} {rtt}, {} errors", u.upstream, u.errors);
    }
    o
}
