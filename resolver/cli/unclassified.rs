//! `cutoff report --unclassified`: the names that only a zone-wide list
//! entry covered, from query logs. These are Kaspersky names that no entry
//! classifies yet: how a SOC and the list's maintainers learn about new
//! endpoints (blocklists/README.md says how to turn one into an entry).

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::records::Format;

/// One unclassified name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NameRow {
    /// The query name as the log wrote it.
    pub(super) qname: String,
    /// The list whose zone entry covered it.
    pub(super) list: String,
    /// The zone entry.
    pub(super) entry: String,
    /// The zone's category (what the name was treated as).
    pub(super) category: Option<String>,
    /// Lookups.
    pub(super) count: u64,
    /// Lookups answered with the blocked answer.
    pub(super) blocked: u64,
    /// First lookup.
    pub(super) first_seen: Timestamp,
    /// Last lookup.
    pub(super) last_seen: Timestamp,
    /// Networks it was asked from, sorted.
    pub(super) networks: Vec<String>,
}

#[derive(Deserialize)]
struct LogLine {
    time: Timestamp,
    network: Option<String>,
    qname: String,
    action: String,
    list: Option<String>,
    category: Option<String>,
    entry: Option<String>,
    #[serde(default)]
    unclassified: bool,
}

/// Adds the unclassified lookups of one log to `rows` (keyed by name and
/// list); returns how many lines were not query-log records.
pub(super) fn aggregate(
    reader: impl BufRead,
    since: Option<Timestamp>,
    rows: &mut HashMap<(String, String), (NameRow, BTreeSet<String>)>,
) -> usize {
    super::records::records(reader, |l: LogLine| {
        if !l.unclassified || since.is_some_and(|s| l.time < s) {
            return;
        }
        let list = l.list.unwrap_or_default();
        let (row, networks) = rows
            .entry((l.qname.clone(), list.clone()))
            .or_insert_with(|| {
                (
                    NameRow {
                        qname: l.qname.clone(),
                        list,
                        entry: l.entry.clone().unwrap_or_default(),
                        category: l.category.clone(),
                        count: 0,
                        blocked: 0,
                        first_seen: l.time,
                        last_seen: l.time,
                        networks: Vec::new(),
                    },
                    BTreeSet::new(),
                )
            });
        row.count += 1;
        row.blocked += u64::from(l.action == "block");
        row.first_seen = row.first_seen.min(l.time);
        row.last_seen = row.last_seen.max(l.time);
        networks.insert(l.network.unwrap_or_else(|| "none".into()));
    })
}

/// The rows, most lookups first, then by name.
pub(super) fn finish(rows: HashMap<(String, String), (NameRow, BTreeSet<String>)>) -> Vec<NameRow> {
    let mut out: Vec<NameRow> = rows
        .into_values()
        .map(|(mut row, nets)| {
            row.networks = nets.into_iter().collect();
            row
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.qname.cmp(&b.qname)));
    out
}

/// Renders rows in a format.
pub(super) fn render(rows: &[NameRow], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut s = String::from(
                "qname,list,entry,category,count,blocked,first_seen,last_seen,networks\n",
            );
            for r in rows {
                let fields = [
                    r.qname.clone(),
                    r.list.clone(),
                    r.entry.clone(),
                    r.category.clone().unwrap_or_default(),
                    r.count.to_string(),
                    r.blocked.to_string(),
                    r.first_seen.to_string(),
                    r.last_seen.to_string(),
                    r.networks.join(" "),
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
                return "no unclassified name was looked up\n".into();
            }
            let wq = rows.iter().map(|r| r.qname.len()).max().unwrap_or(0).max(4);
            let we = rows.iter().map(|r| r.entry.len()).max().unwrap_or(0).max(4);
            let mut s = format!(
                "{:<wq$}  {:<we$}  {:<10}  {:>7}  {:>7}  {:<20}  {:<20}  networks\n",
                "name", "zone", "category", "count", "blocked", "first seen", "last seen"
            );
            for r in rows {
                s.push_str(&format!(
                    "{:<wq$}  {:<we$}  {:<10}  {:>7}  {:>7}  {:<20}  {:<20}  {}\n",
                    r.qname,
                    r.entry,
                    r.category.as_deref().unwrap_or("-"),
                    r.count,
                    r.blocked,
                    r.first_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r.networks.join(", ")
                ));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"time":"2024-10-01T10:00:00Z","network":"staff","qname":"dm.kaspersky-labs.com","action":"block","list":"kaspersky","category":"update","entry":"kaspersky-labs.com","unclassified":true}
{"time":"2024-10-01T12:00:00Z","network":"lab","qname":"dm.kaspersky-labs.com","action":"log","list":"kaspersky","category":"update","entry":"kaspersky-labs.com","unclassified":true}
{"time":"2024-10-01T11:00:00Z","network":"staff","qname":"new.kaspersky.com","action":"log","list":"kaspersky","category":"brand","entry":"kaspersky.com","unclassified":true}
{"time":"2024-10-01T11:00:00Z","network":"staff","qname":"s05.upd.kaspersky.com","action":"block","list":"kaspersky","category":"update","entry":"upd.kaspersky.com","unclassified":false}
{"time":"2024-10-01T11:00:00Z","network":"staff","qname":"old.kaspersky.com","action":"log","list":"kaspersky","category":"brand","entry":"kaspersky.com"}
"#;

    #[test]
    fn only_unclassified_lookups_are_listed_with_counts_and_networks() {
        let mut map = HashMap::new();
        assert_eq!(aggregate(LOG.as_bytes(), None, &mut map), 0);
        let rows = finish(map);
        let expected = "\
name                   zone                category      count  blocked  first seen            last seen             networks
dm.kaspersky-labs.com  kaspersky-labs.com  update            2        1  2024-10-01T10:00:00Z  2024-10-01T12:00:00Z  lab, staff
new.kaspersky.com      kaspersky.com       brand             1        0  2024-10-01T11:00:00Z  2024-10-01T11:00:00Z  staff
";
        assert_eq!(render(&rows, Format::Table), expected);
        let json: Vec<NameRow> = serde_json::from_str(&render(&rows, Format::Json)).unwrap();
        assert_eq!(json, rows);
        assert!(render(&rows, Format::Csv).starts_with("qname,list,entry,"));
    }

    #[test]
    fn since_leaves_out_older_lookups() {
        let mut map = HashMap::new();
        aggregate(
            LOG.as_bytes(),
            Some("2024-10-01T11:30:00Z".parse().unwrap()),
            &mut map,
        );
        let rows = finish(map);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].networks, ["lab"]);
    }
}
