//! The summary behind the status page, `/api/v1/status` and `cutoff status`:
//! per network each rule and its phase now, the activity buckets, the
//! clients still calling, the lists, the upstreams and the config version.
//! Built on request from the running state; beside the query flow.

use std::net::SocketAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::activity::{BUCKET_SECONDS, BUCKETS};
use crate::blocklist::Category;
use crate::clients::ClientRow;
use crate::config::{Action, Rule};
use crate::policy::rule_at;
use crate::runtime::State;

/// Clients listed in the summary (the page stays small on a big network).
pub const STATUS_CLIENTS: usize = 100;

/// The whole summary (docs/api.md, `/api/v1/status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// cutoff's version.
    pub version: String,
    /// When the summary was made.
    pub now: Timestamp,
    /// The running config's version.
    pub config_version: String,
    /// Where the running config came from.
    pub config_origin: String,
    /// Per network, its rules now.
    pub networks: Vec<NetworkStatus>,
    /// Listed lookups over the last hour.
    pub last_hour: Activity,
    /// Listed lookups over the last 24 hours.
    pub last_day: Activity,
    /// Clients that asked for listed names in the last 24 hours: the
    /// [`STATUS_CLIENTS`] seen last, newest first.
    pub clients: Vec<ClientRow>,
    /// How many clients asked in the last 24 hours (all of them:
    /// `/api/v1/clients?since=24h`).
    pub clients_total: usize,
    /// The loaded lists.
    pub lists: Vec<ListStatus>,
    /// The upstreams, in order.
    pub upstreams: Vec<UpstreamStatus>,
}

/// One network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Its name.
    pub name: String,
    /// Whether a rule of this network (not a bypass switch) blocks now:
    /// the cut-off is enforced.
    pub enforcing: bool,
    /// The rules that apply to it, in file order.
    pub rules: Vec<RuleStatus>,
}

/// One rule of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    /// Its name.
    pub name: String,
    /// What it does now (`None`: it does not apply now).
    pub action_now: Option<String>,
    /// always, before, active or after.
    pub phase: String,
    /// Its dated action (from `from` until `until`).
    pub action: String,
    /// `from` as written.
    pub from: Option<String>,
    /// `until` as written.
    pub until: Option<String>,
    /// Categories selected (`None`: every entry of its lists).
    pub categories: Option<Vec<String>>,
}

/// Lookups of listed names over a span.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Seconds per point of `series`.
    pub bucket_seconds: i64,
    /// Per category: blocked, logged, allowed.
    pub categories: Vec<CategoryCounts>,
    /// Listed lookups per bucket, oldest first.
    pub series: Vec<u64>,
}

/// One category's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    /// The category (`none` for entries without one).
    pub category: String,
    /// Answered with the blocked answer.
    pub blocked: u64,
    /// Answered normally and logged.
    pub logged: u64,
    /// Answered normally.
    pub allowed: u64,
}

/// One loaded list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStatus {
    /// Its name.
    pub name: String,
    /// The list's own version, when it has one.
    pub version: Option<String>,
    /// Active entries.
    pub entries: usize,
    /// Active entries per category (`none`: entries without one).
    pub categories: Vec<(String, usize)>,
}

/// One upstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    /// As configured (`udp://…`, `tls://…`).
    pub upstream: String,
    /// Smoothed round-trip time in milliseconds (`None`: not measured yet).
    pub rtt_ms: Option<f64>,
    /// Failed queries since the last start or reload.
    pub errors: u64,
}

fn action_word(a: Action) -> String {
    a.as_str().to_owned()
}

fn rule_status(rule: &Rule, now: Timestamp) -> RuleStatus {
    let (action_now, phase) = rule_at(rule, now);
    RuleStatus {
        name: rule.name.clone(),
        action_now: action_now.map(action_word),
        phase: phase.as_str().to_owned(),
        action: action_word(rule.action),
        from: rule.from_text.clone(),
        until: rule.until_text.clone(),
        categories: rule
            .categories
            .as_ref()
            .map(|c| c.iter().map(|c| c.as_str().to_owned()).collect()),
    }
}

fn activity(state: &State, now: Timestamp, buckets: usize) -> Activity {
    let t = state.activity.totals(now, buckets);
    Activity {
        bucket_seconds: BUCKET_SECONDS,
        categories: t
            .by_category
            .into_iter()
            .map(|(c, [blocked, logged, allowed])| CategoryCounts {
                category: c.map_or("none", Category::as_str).to_owned(),
                blocked,
                logged,
                allowed,
            })
            .collect(),
        series: t.series,
    }
}

/// The summary of `state` at `now`.
pub fn status(state: &State, now: Timestamp) -> Status {
    let runtime = state.current.load();
    let c = &runtime.policy.config;
    let networks = c
        .networks
        .iter()
        .enumerate()
        .map(|(id, n)| {
            let applies: Vec<&Rule> = c
                .rules
                .iter()
                .filter(|r| r.networks.as_ref().is_none_or(|ns| ns.contains(&id)))
                .collect();
            // The bypass switches block canary names, not Kaspersky: they
            // do not make a network enforce the cut-off.
            let enforcing = applies
                .iter()
                .any(|r| !r.is_bypass() && rule_at(r, now).0 == Some(Action::Block));
            NetworkStatus {
                name: n.name.clone(),
                enforcing,
                rules: applies.into_iter().map(|r| rule_status(r, now)).collect(),
            }
        })
        .collect();
    let day_ago = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let log = &c.query_log;
    let mut clients = state.clients.rows(Some(day_ago), |ip| {
        crate::querylog::client_text(SocketAddr::new(ip, 0), log).0
    });
    let clients_total = clients.len();
    clients.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
    clients.truncate(STATUS_CLIENTS);
    let lists = c
        .lists
        .iter()
        .map(|l| ListStatus {
            name: l.name.clone(),
            version: l.version.clone(),
            entries: l.active.iter().sum(),
            categories: l
                .active
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| {
                    let name = i
                        .checked_sub(1)
                        .and_then(|i| Category::ALL.get(i))
                        .map_or("none", |c| c.as_str());
                    (name.to_owned(), *n)
                })
                .collect(),
        })
        .collect();
    let upstreams = runtime
        .upstreams
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, u)| UpstreamStatus {
            upstream: u.to_string(),
            rtt_ms: runtime
                .upstreams
                .srtt(i)
                .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
            errors: runtime.upstreams.failures(i),
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        now,
        config_version: c.version.clone(),
        config_origin: c.origin.clone(),
        networks,
        last_hour: activity(state, now, 12),
        last_day: activity(state, now, BUCKETS),
        clients,
        clients_total,
        lists,
        upstreams,
    }
}
