//! The pieces that every `cutoff report` output shares: the output
//! [`Format`], reading query-log records from a reader, counting a lookup
//! into a client row and merging rows from several replicas, and CSV
//! quoting. A leaf of `cli`: `report`, `evidence` and `unclassified` build
//! on it and it imports none of them. Outside the query flow.

use std::collections::HashMap;
use std::io::BufRead;

use jiff::Timestamp;

use crate::clients::ClientRow;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON array of rows.
    Json,
    /// CSV with a header row, for spreadsheets.
    Csv,
    /// HTML that prints to PDF (`--evidence` only).
    Html,
    /// Markdown (`--evidence` only).
    Md,
}

/// Feeds each query-log record of `reader` to `f`; returns how many lines
/// were not records (blank lines are skipped).
pub(super) fn records<T: serde::de::DeserializeOwned>(
    reader: impl BufRead,
    mut f: impl FnMut(T),
) -> usize {
    let mut bad = 0;
    for line in reader.lines() {
        let Ok(line) = line else {
            bad += 1;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(&line) {
            Ok(record) => f(record),
            Err(_) => bad += 1,
        }
    }
    bad
}

/// Counts one lookup of a listed name into the row of (network, client).
pub(super) fn tally(
    rows: &mut HashMap<(String, String), ClientRow>,
    network: String,
    client: &str,
    time: Timestamp,
    action: &str,
    category: Option<String>,
) {
    let row = rows
        .entry((network.clone(), client.to_owned()))
        .or_insert_with(|| ClientRow {
            network,
            client: client.to_owned(),
            first_seen: time,
            last_seen: time,
            count: 0,
            categories: Vec::new(),
            blocked: 0,
            logged: 0,
        });
    row.first_seen = row.first_seen.min(time);
    row.last_seen = row.last_seen.max(time);
    row.count = row.count.saturating_add(1);
    match action {
        "block" => row.blocked = row.blocked.saturating_add(1),
        "log" => row.logged = row.logged.saturating_add(1),
        _ => {}
    }
    if let Some(c) = category
        && !row.categories.contains(&c)
    {
        row.categories.push(c);
    }
}

/// Merges one row (of one replica's table) into the rows by (network, client).
pub(super) fn merge(rows: &mut HashMap<(String, String), ClientRow>, row: ClientRow) {
    match rows.entry((row.network.clone(), row.client.clone())) {
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(row);
        }
        std::collections::hash_map::Entry::Occupied(mut o) => {
            let r = o.get_mut();
            r.first_seen = r.first_seen.min(row.first_seen);
            r.last_seen = r.last_seen.max(row.last_seen);
            r.count = r.count.saturating_add(row.count);
            r.blocked = r.blocked.saturating_add(row.blocked);
            r.logged = r.logged.saturating_add(row.logged);
            for c in row.categories {
                if !r.categories.contains(&c) {
                    r.categories.push(c);
                }
            }
        }
    }
}

/// One CSV field, quoted when it holds a comma, a quote or a newline.
pub(super) fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}
