//! `cutoff report --evidence`: one file for an auditor that says, per
//! network, since when the cut-off was enforced, what the query logs show
//! after it, every Kaspersky name answered (not blocked) where a rule
//! blocked it, the hosts still calling, and the SHA-256 of every input.
//! Read from query logs and the config; outside the query flow.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::records::{merge, records, tally};
use crate::blocklist::Category;
use crate::clients::{ClientRow, sort};
use crate::config::{Action, Config};
use crate::policy::rule_at;

/// The fields of a query-log line the evidence reads.
#[derive(Deserialize)]
struct Line {
    time: Timestamp,
    client: String,
    network: Option<String>,
    qname: String,
    action: String,
    rule: Option<String>,
    phase: Option<String>,
    category: Option<String>,
    config_version: Option<String>,
}

/// One input file.
#[derive(Debug, Serialize)]
pub(super) struct Input {
    pub(super) path: String,
    pub(super) sha256: String,
    pub(super) bytes: u64,
    /// `holds`, `not chained`, or where the chain breaks.
    pub(super) chain: String,
}

/// A rule that blocks on a network, and from when.
#[derive(Debug, Serialize)]
pub(super) struct Enforcement {
    pub(super) rule: String,
    pub(super) from: Option<String>,
    pub(super) until: Option<String>,
    pub(super) categories: Option<Vec<String>>,
}

/// A config version seen in the logs.
#[derive(Debug, Serialize)]
pub(super) struct Version {
    pub(super) version: String,
    pub(super) first: Timestamp,
    pub(super) last: Timestamp,
    pub(super) records: u64,
}

/// Counts per category.
#[derive(Debug, Default, Serialize)]
pub(super) struct Counts {
    pub(super) blocked: u64,
    pub(super) logged: u64,
    pub(super) allowed: u64,
}

/// A Kaspersky name answered where a rule blocked it.
#[derive(Debug, Serialize)]
pub(super) struct Answered {
    pub(super) time: Timestamp,
    pub(super) client: String,
    pub(super) name: String,
    pub(super) category: Option<String>,
    /// Why it was answered: the decision the log records.
    pub(super) why: String,
}

/// One network's evidence.
#[derive(Debug, Default, Serialize)]
pub(super) struct NetworkEvidence {
    pub(super) name: String,
    pub(super) enforcement: Vec<Enforcement>,
    pub(super) config_versions: Vec<Version>,
    /// Kaspersky lookups while a rule blocked their category, per category.
    pub(super) after_cutoff: BTreeMap<String, Counts>,
    pub(super) answered: Vec<Answered>,
    pub(super) temporary_allows: Vec<Answered>,
    pub(super) hosts: Vec<ClientRow>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(super) struct Evidence {
    pub(super) generated: Timestamp,
    pub(super) since: Timestamp,
    pub(super) until: Option<Timestamp>,
    pub(super) config_origin: String,
    pub(super) config_version: String,
    pub(super) inputs: Vec<Input>,
    pub(super) networks: Vec<NetworkEvidence>,
}

/// Reads one input whole (for its hash and chain), then its records.
fn read_input(path: &std::path::Path) -> std::io::Result<(Input, Vec<u8>)> {
    let mut bytes = Vec::new();
    crate::files::open_regular(path)?.read_to_end(&mut bytes)?;
    let chain = match crate::chain::verify([&bytes[..]]) {
        Ok(v) if v.starts.is_empty() => "not chained".to_owned(),
        Ok(v) => format!("holds through {} lines", v.lines),
        Err(e) => format!("BROKEN: {e}"),
    };
    let input = Input {
        path: path.display().to_string(),
        sha256: hex(&Sha256::digest(&bytes)),
        bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        chain,
    };
    Ok((input, bytes))
}

pub(super) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The category of the entry by which a blocking rule of `network` covers
/// `line`'s name at its time (`None`: no blocking rule covers it then). The
/// name is looked up again, since an allow rule's list may have decided.
fn blocking_category(c: &Config, network: usize, l: &Line) -> Option<Option<Category>> {
    let name = l.qname.to_ascii_lowercase();
    c.rules
        .iter()
        .filter(|r| {
            !r.is_bypass()
                && r.networks.as_ref().is_none_or(|ns| ns.contains(&network))
                && rule_at(r, l.time).0 == Some(Action::Block)
        })
        .find_map(|r| {
            r.lists.iter().find_map(|i| {
                let found = c.lists.get(*i)?.lookup(name.as_bytes())?;
                let selected = r
                    .categories
                    .as_ref()
                    .is_none_or(|cats| found.category.is_some_and(|k| cats.contains(&k)));
                selected.then_some(found.category)
            })
        })
}

/// Builds the evidence from the logs at `paths` for `config`.
pub(super) fn build(
    config: &Config,
    paths: &[PathBuf],
    urls: &[String],
    since: Timestamp,
    until: Option<Timestamp>,
) -> anyhow::Result<Evidence> {
    let mut networks: Vec<NetworkEvidence> = config
        .networks
        .iter()
        .enumerate()
        .map(|(id, n)| NetworkEvidence {
            name: n.name.clone(),
            enforcement: config
                .rules
                .iter()
                .filter(|r| !r.is_bypass() && r.networks.as_ref().is_none_or(|ns| ns.contains(&id)))
                .filter(|r| r.action == Action::Block)
                .map(|r| Enforcement {
                    rule: r.name.clone(),
                    from: r.from_text.clone(),
                    until: r.until_text.clone(),
                    categories: r
                        .categories
                        .as_ref()
                        .map(|c| c.iter().map(|c| c.as_str().to_owned()).collect()),
                })
                .collect(),
            ..NetworkEvidence::default()
        })
        .collect();
    let mut inputs = Vec::new();
    let mut versions: Vec<HashMap<String, Version>> =
        networks.iter().map(|_| HashMap::new()).collect();
    let mut hosts: HashMap<(String, String), ClientRow> = HashMap::new();
    for path in paths {
        let (input, bytes) =
            read_input(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        inputs.push(input);
        let reader: Box<dyn BufRead> = Box::new(BufReader::new(&bytes[..]));
        records(reader, |l: Line| {
            if l.time < since || until.is_some_and(|u| l.time >= u) {
                return;
            }
            let Some(id) = l
                .network
                .as_ref()
                .and_then(|n| config.networks.iter().position(|x| &x.name == n))
            else {
                return;
            };
            let (Some(net), Some(v)) = (networks.get_mut(id), versions.get_mut(id)) else {
                return;
            };
            if let Some(cv) = &l.config_version {
                let e = v.entry(cv.clone()).or_insert(Version {
                    version: cv.clone(),
                    first: l.time,
                    last: l.time,
                    records: 0,
                });
                e.first = e.first.min(l.time);
                e.last = e.last.max(l.time);
                e.records = e.records.saturating_add(1);
            }
            let blocking = blocking_category(config, id, &l);
            let category = l
                .category
                .as_deref()
                .and_then(Category::parse)
                .or(blocking.flatten());
            if !category.is_some_and(Category::is_kaspersky) {
                return;
            }
            let answered = |why: String| Answered {
                time: l.time,
                client: l.client.clone(),
                name: l.qname.clone(),
                category: category.map(|c| c.as_str().to_owned()),
                why,
            };
            if l.rule.as_deref() == Some("temporary-allow") {
                net.temporary_allows
                    .push(answered("temporary allow".to_owned()));
            }
            if blocking.is_some() {
                let key = category.map_or("none", Category::as_str).to_owned();
                let c = net.after_cutoff.entry(key).or_default();
                match l.action.as_str() {
                    "block" => c.blocked = c.blocked.saturating_add(1),
                    "log" => c.logged = c.logged.saturating_add(1),
                    _ => c.allowed = c.allowed.saturating_add(1),
                }
                if l.action != "block" {
                    let why = match (&l.rule, &l.phase) {
                        (Some(r), Some(p)) => format!("{} by rule {r} (phase {p})", l.action),
                        _ => format!("{} with no rule deciding", l.action),
                    };
                    net.answered.push(answered(why));
                }
            }
            tally(
                &mut hosts,
                net.name.clone(),
                &l.client,
                l.time,
                &l.action,
                category.map(|c| c.as_str().to_owned()),
            );
        });
    }
    for url in urls {
        let rows = super::admin_url::fetch(url, Some(since)).map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.into_iter().for_each(|r| merge(&mut hosts, r));
    }
    let mut hosts: Vec<ClientRow> = hosts.into_values().collect();
    sort(&mut hosts);
    for (net, v) in networks.iter_mut().zip(versions) {
        net.config_versions = v.into_values().collect();
        net.config_versions.sort_by_key(|v| v.first);
        net.hosts = hosts
            .iter()
            .filter(|h| h.network == net.name)
            .cloned()
            .collect();
        net.answered.sort_by_key(|a| a.time);
    }
    Ok(Evidence {
        generated: Timestamp::now(),
        since,
        until,
        config_origin: config.origin.clone(),
        config_version: config.version.clone(),
        inputs,
        networks,
    })
}
