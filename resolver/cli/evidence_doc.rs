//! The evidence report as a document: headings, paragraphs and tables,
//! written as Markdown or as HTML that prints cleanly to PDF (every value
//! escaped). Outside the query flow.

use std::fmt::Write as _;

use super::evidence::Evidence;
use crate::http::escape;

/// One part of the document.
enum Block {
    Heading(u8, String),
    Para(String),
    Table(Vec<&'static str>, Vec<Vec<String>>),
}

fn none_or(rows: Vec<Vec<String>>, cols: usize, empty: &str) -> Vec<Vec<String>> {
    if rows.is_empty() {
        let mut row = vec![empty.to_owned()];
        row.resize(cols, String::new());
        vec![row]
    } else {
        rows
    }
}

fn blocks(e: &Evidence) -> Vec<Block> {
    let mut b = vec![
        Block::Heading(1, "cutoff: evidence of the Kaspersky cut-off".into()),
        Block::Para(format!(
            "Period {} to {}. Config {} (version {}). Generated {}.",
            e.since,
            e.until
                .map_or_else(|| "the end of the logs".to_owned(), |u| u.to_string()),
            e.config_origin,
            e.config_version,
            e.generated
        )),
        Block::Heading(2, "Inputs".into()),
        Block::Table(
            vec!["file", "bytes", "SHA-256", "hash chain"],
            e.inputs
                .iter()
                .map(|i| {
                    vec![
                        i.path.clone(),
                        i.bytes.to_string(),
                        i.sha256.clone(),
                        i.chain.clone(),
                    ]
                })
                .collect(),
        ),
    ];
    for n in &e.networks {
        b.push(Block::Heading(2, format!("Network {}", n.name)));
        b.push(Block::Heading(3, "Enforcement".into()));
        let rows = n
            .enforcement
            .iter()
            .map(|r| {
                vec![
                    r.rule.clone(),
                    r.from.clone().unwrap_or_else(|| "always".into()),
                    r.until.clone().unwrap_or_default(),
                    r.categories
                        .as_ref()
                        .map_or_else(|| "all".into(), |c| c.join(", ")),
                ]
            })
            .collect();
        b.push(Block::Table(
            vec!["blocking rule", "from", "until", "categories"],
            none_or(rows, 4, "no rule blocks on this network"),
        ));
        b.push(Block::Heading(
            3,
            "Config versions in force (from the logs)".into(),
        ));
        let rows = n
            .config_versions
            .iter()
            .map(|v| {
                vec![
                    v.version.clone(),
                    v.first.to_string(),
                    v.last.to_string(),
                    v.records.to_string(),
                ]
            })
            .collect();
        b.push(Block::Table(
            vec!["version", "first record", "last record", "records"],
            none_or(rows, 4, "no records"),
        ));
        b.push(Block::Heading(
            3,
            "Kaspersky lookups while a rule blocked them".into(),
        ));
        let rows = n
            .after_cutoff
            .iter()
            .map(|(c, k)| {
                vec![
                    c.clone(),
                    k.blocked.to_string(),
                    k.logged.to_string(),
                    k.allowed.to_string(),
                ]
            })
            .collect();
        b.push(Block::Table(
            vec!["category", "blocked", "logged", "allowed"],
            none_or(rows, 4, "none"),
        ));
        b.push(Block::Heading(
            3,
            "Answered (not blocked) after the cut-off".into(),
        ));
        b.push(Block::Para(if n.answered.is_empty() {
            "None: every such lookup was blocked.".into()
        } else {
            format!(
                "{} lookup(s) answered where a rule blocked the name:",
                n.answered.len()
            )
        }));
        let answered = |list: &[super::evidence::Answered]| -> Vec<Vec<String>> {
            list.iter()
                .map(|a| {
                    vec![
                        a.time.to_string(),
                        a.client.clone(),
                        a.name.clone(),
                        a.category.clone().unwrap_or_default(),
                        a.why.clone(),
                    ]
                })
                .collect()
        };
        if !n.answered.is_empty() {
            b.push(Block::Table(
                vec!["time", "client", "name", "category", "why"],
                answered(&n.answered),
            ));
        }
        b.push(Block::Heading(3, "Temporary allows used".into()));
        b.push(Block::Table(
            vec!["time", "client", "name", "category", "why"],
            none_or(answered(&n.temporary_allows), 5, "none"),
        ));
        b.push(Block::Heading(
            3,
            "Hosts still calling (remediation inventory)".into(),
        ));
        let rows = n
            .hosts
            .iter()
            .map(|h| {
                vec![
                    h.client.clone(),
                    h.first_seen.to_string(),
                    h.last_seen.to_string(),
                    h.categories.join(", "),
                    h.count.to_string(),
                    h.blocked.to_string(),
                    h.logged.to_string(),
                ]
            })
            .collect();
        b.push(Block::Table(
            vec![
                "client",
                "first seen",
                "last seen",
                "categories",
                "lookups",
                "blocked",
                "logged",
            ],
            none_or(rows, 7, "none"),
        ));
    }
    b
}

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// The report as Markdown.
pub(super) fn markdown(e: &Evidence) -> String {
    let mut o = String::new();
    for b in blocks(e) {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(o, "{} {}\n", "#".repeat(usize::from(level)), md_cell(&text));
            }
            Block::Para(text) => {
                let _ = writeln!(o, "{}\n", md_cell(&text));
            }
            Block::Table(head, rows) => {
                let _ = writeln!(o, "| {} |", head.join(" | "));
                let _ = writeln!(o, "|{}", " --- |".repeat(head.len()));
                for r in rows {
                    let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
                    let _ = writeln!(o, "| {} |", cells.join(" | "));
                }
                o.push('\n');
            }
        }
    }
    o
}

const PRINT_CSS: &str = "body{font-family:\"DejaVu Sans\",sans-serif;max-width:60rem;margin:auto;padding:1rem}\
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-bottom:1rem}\
th,td{border:1px solid #999;padding:.15rem .3rem;text-align:left;vertical-align:top;word-break:break-all}\
h2{break-before:auto;border-bottom:1px solid #333}h3{break-after:avoid}tr{break-inside:avoid}\
@media print{body{max-width:none;padding:0}@page{margin:1.5cm}}";

/// The report as one HTML file (inline print style, no script).
pub(super) fn html(e: &Evidence) -> String {
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cutoff evidence</title><style>{PRINT_CSS}</style></head><body>\n"
    );
    for b in blocks(e) {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(o, "<h{level}>{}</h{level}>", escape(&text));
            }
            Block::Para(text) => {
                let _ = writeln!(o, "<p>{}</p>", escape(&text));
            }
            Block::Table(head, rows) => {
                o.push_str("<table><tr>");
                for h in head {
                    let _ = write!(o, "<th>{}</th>", escape(h));
                }
                o.push_str("</tr>\n");
                for r in rows {
                    o.push_str("<tr>");
                    for c in r {
                        let _ = write!(o, "<td>{}</td>", escape(&c));
                    }
                    o.push_str("</tr>\n");
                }
                o.push_str("</table>\n");
            }
        }
    }
    o.push_str("</body></html>\n");
    o
}
