//! One decision and why: the client's network, the rule and its phase, the
//! matched entry, its zone and sources. `cutoff explain` prints it and the
//! status page's explain form (`/?name=…`, `/api/v1/explain`) shows the
//! same text, so both say exactly what serving does: they call the same
//! `Snapshot::decide`. Outside the query flow.

use std::fmt::Write as _;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::Serialize;

use crate::allows::Allow;
use crate::matcher::NameBuf;
use crate::policy::{Decision, Snapshot, Verdict};

/// Why a name cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Empty or too long for DNS.
    #[error("`{0}` is not a DNS name (empty or longer than 253 bytes)")]
    NotAName(String),
}

/// Decides `name` for `client` at `at` as serving does, with the answer
/// addresses `answers` checked as serving checks an upstream answer.
pub fn explain(
    snapshot: &Snapshot,
    client: IpAddr,
    name: &str,
    at: Timestamp,
    answers: &[IpAddr],
) -> Result<Explanation, ExplainError> {
    explain_with(snapshot, client, name, at, answers, &[])
}

/// [`explain`] with the temporary allows in force (`crate::allows`): one
/// that opens the name makes the answer an allow by rule `temporary-allow`,
/// as serving does.
pub fn explain_with(
    snapshot: &Snapshot,
    client: IpAddr,
    name: &str,
    at: Timestamp,
    answers: &[IpAddr],
    allows: &[Allow],
) -> Result<Explanation, ExplainError> {
    let Some(buf) = NameBuf::new(name.as_bytes()) else {
        return Err(ExplainError::NotAName(name.to_owned()));
    };
    let d = snapshot.decide(client, buf.as_bytes(), at);
    if let Some(a) = crate::allows::opening(allows, snapshot, &d, buf.as_bytes(), at) {
        let mut e = explanation(snapshot, &d, client, buf.as_bytes(), at);
        e.action = Verdict::Allow.as_str().to_owned();
        e.rule = Some(crate::allows::RULE.to_owned());
        e.phase = None;
        e.temporary_allow = Some(a.clone());
        return Ok(e);
    }
    let (d, via) = answer_check(snapshot, d, client, answers, at);
    let mut e = explanation(snapshot, &d, client, buf.as_bytes(), at);
    e.via = via.map(|a| format!("answer address {a}"));
    e.address_rules_apply = answers.is_empty()
        && snapshot.has_address_lists()
        && (d.verdict == Verdict::Log || (d.verdict == Verdict::Allow && d.rule.is_none()));
    Ok(e)
}

/// The JSON form of a decision (stable field names; documented in
/// docs/configuration.md).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// allow, log, block or refuse.
    pub action: String,
    /// The client's network.
    pub network: Option<String>,
    /// The CIDR that put the client in it.
    pub cidr: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// The list of the matched entry.
    pub list: Option<String>,
    /// The matched entry's category.
    pub category: Option<String>,
    /// The matched entry.
    pub entry: Option<String>,
    /// exact, suffix or below.
    #[serde(rename = "match")]
    pub coverage: Option<String>,
    /// The deciding entry is zone-wide and no more specific entry names the
    /// name: a Kaspersky name nobody has classified yet.
    pub unclassified: bool,
    /// What the deciding entry's zone is (infrastructure, mixed, web,
    /// brand), when the entry is a zone.
    pub zone: Option<String>,
    /// The answer address that decided (`--answer`), when one did.
    pub via: Option<String>,
    /// Response-address rules would still look at the answer (the config
    /// has address lists and no `--answer` was given).
    pub address_rules_apply: bool,
    /// The rule's phase: always, before, active or after.
    pub phase: Option<String>,
    /// The name as looked up (lowercase, no trailing dot).
    pub name: String,
    /// The client.
    pub client: String,
    /// The instant decided at.
    pub at: String,
    /// The config version.
    pub config_version: String,
    /// Sources of the matched entry, when its list records them.
    pub sources: Vec<String>,
    /// The temporary allow that let the name through (rule
    /// `temporary-allow`), when one did; absent from the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_allow: Option<Allow>,
}

/// Builds the explanation of a decision.
pub fn explanation(
    s: &Snapshot,
    d: &Decision<'_>,
    client: IpAddr,
    name: &[u8],
    at: Timestamp,
) -> Explanation {
    let c = &s.config;
    let m = d.matched.as_ref();
    let entry = m.map(
        |m| match c.lists[m.list].set.pattern(m.pattern.unwrap_or(u16::MAX)) {
            Some(pattern) => pattern.to_owned(),
            None => String::from_utf8_lossy(m.entry).into_owned(),
        },
    );
    let catalogue_entry = match (m, &entry) {
        (Some(m), Some(e)) => c.lists[m.list]
            .catalogue
            .as_ref()
            .and_then(|cat| cat.entry(e, m.coverage)),
        _ => None,
    };
    let sources = catalogue_entry
        .map(|e| e.sources.clone())
        .unwrap_or_default();
    Explanation {
        action: d.verdict.as_str().to_owned(),
        network: d.network.map(|n| s.network_name(n).to_owned()),
        cidr: d.cidr.map(|n| n.to_string()),
        rule: d.rule.map(|(r, _)| c.rules[r].name.clone()),
        list: m.map(|m| c.lists[m.list].name.clone()),
        category: m.and_then(|m| m.category).map(|c| c.as_str().to_owned()),
        entry,
        coverage: m.map(|m| m.coverage.as_str().to_owned()),
        unclassified: m.is_some_and(|m| m.unclassified),
        zone: catalogue_entry
            .and_then(|e| e.zone)
            .map(|z| z.as_str().to_owned()),
        via: None,
        address_rules_apply: false,
        phase: d.rule.map(|(_, p)| p.as_str().to_owned()),
        name: String::from_utf8_lossy(name).into_owned(),
        client: client.to_string(),
        at: at.to_string(),
        config_version: c.version.clone(),
        sources,
        temporary_allow: None,
    }
}

/// What `serve` does with the addresses of an answer: the first one a rule
/// blocks turns the answer into the blocked answer; else the first one a
/// rule logs marks a plainly allowed name as logged (`pipeline::recheck`).
pub fn answer_check<'q>(
    s: &'q Snapshot,
    d: Decision<'q>,
    client: IpAddr,
    answers: &[IpAddr],
    at: Timestamp,
) -> (Decision<'q>, Option<IpAddr>) {
    // A name an `allow` rule decided is not re-checked (allow beats block).
    if !matches!(d.verdict, Verdict::Allow | Verdict::Log)
        || (d.verdict == Verdict::Allow && d.rule.is_some())
    {
        return (d, None);
    }
    let mut logged = None;
    for &address in answers {
        let a = s.decide_address(client, address, at);
        match a.verdict {
            Verdict::Block => return (a, Some(address)),
            Verdict::Log if d.verdict == Verdict::Allow && logged.is_none() => {
                logged = Some((a, address));
            }
            _ => {}
        }
    }
    match logged {
        Some((a, address)) => (a, Some(address)),
        None => (d, None),
    }
}

/// The text `cutoff explain` prints.
pub fn text(s: &Snapshot, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} for {} asking {} at {}",
        e.action.to_uppercase(),
        e.client,
        e.name,
        e.at
    );
    match (&e.network, &e.cidr) {
        (None, _) => {
            let _ = writeln!(
                out,
                "  client   refused by `access` (not in `access.allow`, or in `access.deny`) before any rule"
            );
            return out;
        }
        (Some(n), Some(c)) => {
            let _ = writeln!(out, "  network  {n} (client is in {c})");
        }
        (Some(n), None) => {
            let _ = writeln!(out, "  network  {n} (in no named network)");
        }
    }
    match (&e.rule, &e.phase) {
        (_, _) if e.temporary_allow.is_some() => {
            if let Some(a) = &e.temporary_allow {
                let on = a.network.as_deref().map_or_else(
                    || "every network that permits it".to_owned(),
                    |n| format!("network {n}"),
                );
                let _ = writeln!(
                    out,
                    "  rule     {} of {} on {on} until {} (`cutoff allow --remove {}` ends it)",
                    crate::allows::RULE,
                    a.name,
                    a.until,
                    a.name
                );
            }
        }
        (Some(r), Some(p)) => {
            let rule = s.config.rules.iter().find(|x| &x.name == r);
            let from = rule
                .and_then(|x| x.from_text.as_ref())
                .map(|f| format!(", from {f}"));
            let until = rule
                .and_then(|x| x.until_text.as_ref())
                .map(|u| format!(" until {u}"));
            let when = format!("{}{}", from.unwrap_or_default(), until.unwrap_or_default());
            let _ = writeln!(out, "  rule     {r} (phase {p}{when})");
        }
        _ => {
            let why = if e.entry.is_some() {
                "no rule of this network applies to this entry now"
            } else {
                "the name is in no list of this network's rules"
            };
            let _ = writeln!(out, "  rule     none: {why}");
        }
    }
    if let (Some(list), Some(entry)) = (&e.list, &e.entry) {
        let cat = e.category.as_deref().unwrap_or("uncategorised");
        let cov = e.coverage.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "  entry    {entry} ({cov}, category {cat}) in list {list}"
        );
        if let Some(via) = &e.via {
            let _ = writeln!(out, "  via      {via}");
        }
        if let Some(zone) = &e.zone {
            let how = if e.unclassified {
                "; no entry names this host: unclassified (cutoff report --unclassified)"
            } else {
                ""
            };
            let _ = writeln!(out, "  zone     {zone} zone{how}");
        }
        for src in &e.sources {
            let _ = writeln!(out, "  source   {src}");
        }
    }
    if e.address_rules_apply {
        let _ = writeln!(
            out,
            "  answer   address rules still apply to the answer: add --answer IP to check an address"
        );
    }
    let _ = writeln!(
        out,
        "  config   {} (version {})",
        s.config.origin, e.config_version
    );
    out
}
