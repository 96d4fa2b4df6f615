//! `cutoff report`: the remediation list. Per network, every client that
//! asked for a listed (Kaspersky) name, from a query log or from a running
//! server's `/api/v1/clients`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::admin_url;
use super::records::{Format, merge, records, tally};
use super::source::InspectedConfig;
use crate::clients::{ClientRow, sort};

/// Arguments of `cutoff report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A query log to read (JSON lines; repeatable; `-` for stdin).
    #[arg(long, value_name = "PATH")]
    pub(super) log: Vec<PathBuf>,
    /// A running server's admin endpoint, e.g. http://127.0.0.1:9153 or
    /// http://localhost:9153. Without --log and --url: the `http` address of
    /// the config (as for `check`: --config, /etc/cutoff/cutoff.yaml, or the
    /// embedded default's 127.0.0.1:9153).
    /// Repeatable: the tables of several replicas are merged.
    #[arg(long, value_name = "URL")]
    pub(super) url: Vec<String>,
    #[command(flatten)]
    pub(super) config: InspectedConfig,
    /// Only clients seen since: a duration back from now (90s, 30m, 24h, 7d), an
    /// RFC 3339 instant (2024-09-29T04:00:00Z) or a date (2024-09-29, midnight UTC).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub(super) since: Option<Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub(super) format: Format,
    /// List the names that only a zone-wide entry covered (Kaspersky names no
    /// entry classifies yet) instead of clients; reads query logs (`--log`).
    #[arg(long, conflicts_with = "url")]
    unclassified: bool,
    /// Check the hash chain of query logs written with `query_log.chain:
    /// true` (rotated files oldest first) and name the first broken line.
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with_all = ["log", "url", "unclassified"])]
    verify: Vec<PathBuf>,
    /// The evidence report for auditors, from the query logs (`--log`) and
    /// the config: needs --since; --format md (default here), html or json.
    /// With --url (repeatable), the hosts still calling come from those
    /// servers' client tables too (the replicas of a fleet).
    #[arg(long, requires = "since", conflicts_with = "unclassified")]
    evidence: bool,
    /// With --evidence: the end of the period (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_since, requires = "evidence")]
    pub(super) until: Option<Timestamp>,
}

/// Parses `--since` (the forms in [`crate::since`]), back from now.
fn parse_since(s: &str) -> Result<Timestamp, crate::since::SinceError> {
    crate::since::parse(s, Timestamp::now())
}

/// The fields of a query-log line that the report reads.
#[derive(Deserialize)]
struct LogLine {
    time: Timestamp,
    client: String,
    network: Option<String>,
    action: String,
    category: Option<String>,
    entry: Option<String>,
}

/// Aggregates query-log lines into report rows: every line whose name
/// matched a list entry counts.
pub fn aggregate(
    reader: impl BufRead,
    since: Option<Timestamp>,
    rows: &mut HashMap<(String, String), ClientRow>,
) -> usize {
    records(reader, |l: LogLine| {
        if l.entry.is_none() || since.is_some_and(|s| l.time < s) {
            return;
        }
        let network = l.network.unwrap_or_else(|| "none".into());
        tally(rows, network, &l.client, l.time, &l.action, l.category);
    })
}

pub(super) fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    if !args.verify.is_empty() {
        return Ok(super::verify::run(&args.verify));
    }
    if args.evidence {
        return evidence(args);
    }
    if matches!(args.format, Format::Html | Format::Md) {
        eprintln!("error: --format html and md are for --evidence; use table, json or csv");
        return Ok(ExitCode::from(2));
    }
    if args.unclassified {
        return unclassified(args);
    }
    if !args.url.is_empty() && !args.log.is_empty() {
        eprintln!(
            "error: --url and --log read different sources; give one of them (both only with --evidence)"
        );
        return Ok(ExitCode::from(2));
    }
    let mut urls = args.url.clone();
    if urls.is_empty() && args.log.is_empty() {
        match admin_url::default_url(
            &args.config,
            "the client table",
            ", --log PATH for a query log",
            "no --log or --url given",
        ) {
            Some(url) => urls.push(url),
            None => return Ok(ExitCode::FAILURE),
        }
    }
    let mut map = HashMap::new();
    if urls.is_empty() {
        read_logs(&args.log, |reader| aggregate(reader, args.since, &mut map))?;
    }
    for url in &urls {
        match admin_url::fetch(url, args.since) {
            Ok(rows) => rows.into_iter().for_each(|r| merge(&mut map, r)),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let mut rows: Vec<ClientRow> = map.into_values().collect();
    for r in &mut rows {
        r.categories
            .sort_by_key(|c| crate::blocklist::Category::parse(c).map_or(99, |c| c as u8));
    }
    sort(&mut rows);
    let mut out = std::io::stdout().lock();
    out.write_all(render(&rows, args.format).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Feeds each query log (`-`: standard input) to `each`, which returns how
/// many of its lines were not records; those are reported per file.
fn read_logs(
    paths: &[PathBuf],
    mut each: impl FnMut(&mut dyn BufRead) -> usize,
) -> anyhow::Result<()> {
    for path in paths {
        let bad = if path.as_os_str() == "-" {
            each(&mut std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            each(&mut BufReader::new(f))
        };
        if bad > 0 {
            eprintln!(
                "warning: {}: {bad} line(s) are not query-log records; skipped",
                path.display()
            );
        }
    }
    Ok(())
}

/// `cutoff report --evidence`: the report on stdout, its SHA-256 on stderr.
fn evidence(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(since) = args.since else {
        anyhow::bail!("--evidence needs --since");
    };
    if args.log.is_empty() {
        eprintln!(
            "error: --evidence reads query logs: give --log PATH (repeatable; --url adds servers' client tables)"
        );
        return Ok(ExitCode::from(2));
    }
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => {
            super::print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    let e = super::evidence::build(&config, &args.log, &args.url, since, args.until)?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&e)? + "\n",
        Format::Html => super::evidence_doc::html(&e),
        Format::Md | Format::Table | Format::Csv => super::evidence_doc::markdown(&e),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    eprintln!(
        "report SHA-256: {}",
        super::evidence::hex(&Sha256::digest(text.as_bytes()))
    );
    Ok(ExitCode::SUCCESS)
}

/// `--unclassified`: the names only a zone-wide entry covered, from the logs.
fn unclassified(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut map = HashMap::new();
    read_logs(&args.log, |reader| {
        super::unclassified::aggregate(reader, args.since, &mut map)
    })?;
    let rows = super::unclassified::finish(map);
    let text = super::unclassified::render(&rows, args.format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Renders rows in a format.
pub fn render(rows: &[ClientRow], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut s = String::from(
                "network,client,first_seen,last_seen,count,blocked,logged,categories\n",
            );
            for r in rows {
                let fields = [
                    r.network.clone(),
                    r.client.clone(),
                    r.first_seen.to_string(),
                    r.last_seen.to_string(),
                    r.count.to_string(),
                    r.blocked.to_string(),
                    r.logged.to_string(),
                    r.categories.join(" "),
                ];
                let line: Vec<String> = fields
                    .iter()
                    .map(|f| super::records::csv_field(f))
                    .collect();
                s.push_str(&line.join(","));
                s.push('\n');
            }
            s
        }
        Format::Table | Format::Html | Format::Md => {
            if rows.is_empty() {
                return "no client asked for a listed name\n".into();
            }
            let wn = rows
                .iter()
                .map(|r| r.network.len())
                .max()
                .unwrap_or(0)
                .max(7);
            let wc = rows
                .iter()
                .map(|r| r.client.len())
                .max()
                .unwrap_or(0)
                .max(6);
            let mut s = format!(
                "{:<wn$}  {:<wc$}  {:<20}  {:<20}  {:>7}  {:>7}  {:>7}  categories\n",
                "network", "client", "first seen", "last seen", "count", "blocked", "logged"
            );
            for r in rows {
                s.push_str(&format!(
                    "{:<wn$}  {:<wc$}  {:<20}  {:<20}  {:>7}  {:>7}  {:>7}  {}\n",
                    r.network,
                    r.client,
                    r.first_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r.count,
                    r.blocked,
                    r.logged,
                    r.categories.join(", ")
                ));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"time":"2024-10-01T10:00:00Z","client":"10.1.0.5","client_port":1,"network":"staff","protocol":"udp","qname":"s05.upd.kaspersky.com","qtype":"A","action":"block","rule":"r","list":"k","category":"update","entry":"s05.upd.kaspersky.com","phase":"active","rcode":"NXDOMAIN","duration_us":12,"upstream":null,"cached":false,"config_version":"0"}
{"time":"2024-10-01T11:00:00Z","client":"10.1.0.5","client_port":1,"network":"staff","protocol":"udp","qname":"ksn-file-geo.kaspersky-labs.com","qtype":"A","action":"block","rule":"r","list":"k","category":"telemetry","entry":"ksn-file-geo.kaspersky-labs.com","phase":"active","rcode":"NXDOMAIN","duration_us":12,"upstream":null,"cached":false,"config_version":"0"}
{"time":"2024-10-01T09:00:00Z","client":"10.2.0.9","client_port":1,"network":"lab","protocol":"tcp","qname":"www.kaspersky.com","qtype":"A","action":"log","rule":"w","list":"k","category":"brand","entry":"kaspersky.com","phase":"always","rcode":"NOERROR","duration_us":900,"upstream":"9.9.9.9:53","cached":false,"config_version":"0"}
{"time":"2024-10-01T09:30:00Z","client":"10.2.0.9","client_port":1,"network":"lab","protocol":"udp","qname":"example.com","qtype":"A","action":"allow","rule":null,"list":null,"category":null,"entry":null,"phase":null,"rcode":"NOERROR","duration_us":50,"upstream":"9.9.9.9:53","cached":true,"config_version":"0"}
not json
"#;

    fn rows(since: Option<Timestamp>) -> (Vec<ClientRow>, usize) {
        let mut map = HashMap::new();
        let bad = aggregate(LOG.as_bytes(), since, &mut map);
        let mut rows: Vec<ClientRow> = map.into_values().collect();
        sort(&mut rows);
        (rows, bad)
    }

    #[test]
    fn a_fixed_log_gives_the_expected_table() {
        let (rows, bad) = rows(None);
        assert_eq!(bad, 1);
        let table = render(&rows, Format::Table);
        let expected = "\
network  client    first seen            last seen               count  blocked   logged  categories
lab      10.2.0.9  2024-10-01T09:00:00Z  2024-10-01T09:00:00Z        1        0        1  brand
staff    10.1.0.5  2024-10-01T10:00:00Z  2024-10-01T11:00:00Z        2        2        0  update, telemetry
";
        assert_eq!(table, expected);
    }

    #[test]
    fn since_and_csv_and_json_agree() {
        let (rows, _) = rows(Some("2024-10-01T10:30:00Z".parse().unwrap()));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].count, 1);
        let csv = render(&rows, Format::Csv);
        assert_eq!(
            csv,
            "network,client,first_seen,last_seen,count,blocked,logged,categories\nstaff,10.1.0.5,2024-10-01T11:00:00Z,2024-10-01T11:00:00Z,1,1,0,telemetry\n"
        );
        let json: Vec<ClientRow> = serde_json::from_str(&render(&rows, Format::Json)).unwrap();
        assert_eq!(json, rows);
    }

    #[test]
    fn since_accepts_instants_and_durations() {
        assert!(parse_since("2024-09-29T00:00:00-04:00").is_ok());
        let day = parse_since("24h").unwrap();
        assert!(Timestamp::now() - jiff::SignedDuration::from_hours(25) < day);
        assert!(parse_since("7x").is_err());
    }
}
