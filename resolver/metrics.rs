//! Metric names, help texts, bounded label sets, and the handles the query
//! path increments.
//!
//! Sits beside the query flow: after each answer, `pipeline::observe` adds to
//! counters resolved once per loaded config ([`Counters`]), so a query pays
//! an atomic add per counter and never formats a label. Labels come from the
//! config (network, list, category, action, rule, upstream, protocol, rcode):
//! never a client address or a query name. Every family exists from start-up
//! with zero values, so dashboards and alerts never see a missing series.
//! docs/metrics.md lists them all.
//!
//! Each server owns its recorder (no global one), so several servers in one
//! process (the tests) keep separate numbers.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::sync::Arc;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

mod histogram;

use crate::blocklist::Category;
use crate::config::{Action, Config};
use crate::policy::{Verdict, rule_at};
use crate::query::{Answered, Protocol};

static META: Metadata<'static> = Metadata::new("cutoff", Level::INFO, Some("cutoff"));

/// Buckets of `cutoff_query_duration_seconds`.
pub const QUERY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets of `cutoff_upstream_duration_seconds`.
pub const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every family: (name, kind, help). docs/metrics.md has the long form.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "cutoff_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "Unix time at which the DoT/DoH certificate in force expires (only with listen_tls or listen_https).",
    ),
    (
        "cutoff_build_info",
        "gauge",
        "Build of the running binary (value 1).",
    ),
    (
        "cutoff_config_info",
        "gauge",
        "Config fingerprint: 1 for the config in force, 0 for earlier ones.",
    ),
    (
        "cutoff_config_reloads_total",
        "counter",
        "Config reloads by result (success, failure).",
    ),
    (
        "cutoff_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful config load.",
    ),
    (
        "cutoff_queries_total",
        "counter",
        "Queries by client network, policy action and protocol.",
    ),
    (
        "cutoff_policy_matches_total",
        "counter",
        "Queries a rule matched, by network, list, category, action and rule.",
    ),
    (
        "cutoff_unclassified_queries_total",
        "counter",
        "Queries that only a zone-wide list entry covered (names no entry classifies yet), by list, category and action.",
    ),
    (
        "cutoff_responses_total",
        "counter",
        "Answers sent, by response code.",
    ),
    (
        "cutoff_query_duration_seconds",
        "histogram",
        "Time from receipt to answer, by path (blocked, cached, forwarded, local).",
    ),
    (
        "cutoff_upstream_requests_total",
        "counter",
        "Tries sent to upstream resolvers, by upstream and result (ok, error).",
    ),
    (
        "cutoff_upstream_duration_seconds",
        "histogram",
        "Round-trip time of successful upstream tries, by upstream.",
    ),
    (
        "cutoff_temporary_allows",
        "gauge",
        "Temporary allows in force (cutoff allow).",
    ),
    (
        "cutoff_temporary_allow_answers_total",
        "counter",
        "Answers a temporary allow let through (blocked or logged names answered).",
    ),
    (
        "cutoff_cache_hits_total",
        "counter",
        "Queries answered from the cache.",
    ),
    (
        "cutoff_cache_misses_total",
        "counter",
        "Queries that needed an upstream.",
    ),
    (
        "cutoff_cache_entries",
        "gauge",
        "Answers held in the cache.",
    ),
    (
        "cutoff_cache_bytes",
        "gauge",
        "Bytes the cache is charged against cache.max_bytes.",
    ),
    (
        "cutoff_cache_stale_answers_total",
        "counter",
        "Expired answers served because every upstream failed (RFC 8767).",
    ),
    (
        "cutoff_cache_refreshes_total",
        "counter",
        "Background refreshes of names served stale, by result (fresh: the cache holds a fresh answer again; failed).",
    ),
    (
        "cutoff_list_entries",
        "gauge",
        "Active entries per list and category.",
    ),
    (
        "cutoff_rule_enforcing",
        "gauge",
        "1 while the rule's action on the network is block right now (the cut-off is in force there), else 0.",
    ),
    (
        "cutoff_kaspersky_clients",
        "gauge",
        "Distinct clients per network that asked for a listed (Kaspersky) name in the last 24 hours.",
    ),
    (
        "cutoff_querylog_records_total",
        "counter",
        "Query-log records written.",
    ),
    (
        "cutoff_querylog_dropped_total",
        "counter",
        "Query-log records dropped (queue full or writes failing); answers are never delayed.",
    ),
    (
        "cutoff_querylog_write_errors_total",
        "counter",
        "Failed query-log writes.",
    ),
    (
        "cutoff_dropped_total",
        "counter",
        "Queries or connections dropped without an answer, by reason.",
    ),
    ("cutoff_tcp_connections", "gauge", "Open TCP connections."),
    (
        "cutoff_rate_limited_total",
        "counter",
        "UDP queries over the per-client rate limit, by action (drop, slip: an empty TC=1 reply).",
    ),
    (
        "cutoff_rules_active",
        "gauge",
        "Rules in the config in force; 0 means nothing is blocked or logged.",
    ),
    (
        "cutoff_list_refresh_total",
        "counter",
        "Downloads of URL lists by list and result (updated, unchanged, failed, rejected, store_failed).",
    ),
    (
        "cutoff_rpz_serial",
        "gauge",
        "SOA serial of each served RPZ zone (rpz.zones).",
    ),
    (
        "cutoff_rpz_notify_total",
        "counter",
        "NOTIFY messages to rpz.notify secondaries, by result (ok, refused, timeout).",
    ),
    (
        "cutoff_list_last_success_timestamp_seconds",
        "gauge",
        "Unix time a URL list was last downloaded or confirmed unchanged (0: never since start).",
    ),
];

/// Response codes with their own series; everything else is `other`.
pub const RCODES: &[&str] = &[
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];
/// Reasons of `cutoff_dropped_total`.
pub const DROP_REASONS: &[&str] = &[
    "qr_set",
    "access",
    "inflight_full",
    "tcp_connections",
    "send_failed",
    "tcp_per_client",
    "tcp_evicted",
    "doh_rejected",
];
/// Why something was dropped without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// A packet with QR=1.
    QrSet = 0,
    /// A client outside `access` with `denied: drop`.
    Access = 1,
    /// `max_inflight` was reached.
    InflightFull = 2,
    /// `tcp.max_connections` was reached with no idle connection to evict.
    TcpConnections = 3,
    /// The reply could not be sent (the query is not counted as answered).
    SendFailed = 4,
    /// A new TCP connection from a prefix at `tcp.max_per_client`.
    TcpPerClient = 5,
    /// An idle TCP connection closed to make room for a new one.
    TcpEvicted = 6,
    /// A DoH request answered with an HTTP error (no DNS message, wrong
    /// method, path or content type, too large), before the pipeline.
    DohRejected = 7,
}

const ACTIONS: [Verdict; 4] = [
    Verdict::Allow,
    Verdict::Log,
    Verdict::Block,
    Verdict::Refuse,
];
const PROTOCOLS: [Protocol; Protocol::ALL.len()] = Protocol::ALL;
const PATHS: [&str; 4] = ["blocked", "cached", "forwarded", "local"];

/// The process's metrics: the recorder and the handles that do not depend
/// on the config.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// The histograms, counted apart from the exporter (`histogram`).
    histograms: histogram::Families,
    /// By response code (index of [`RCODES`]).
    pub responses: Vec<Counter>,
    /// By path (index of `PATHS`).
    pub durations: Vec<Histogram>,
    /// By reason (index of [`DROP_REASONS`]).
    drops: Vec<Counter>,
    /// Cache hits.
    pub cache_hits: Counter,
    /// Cache misses.
    pub cache_misses: Counter,
    /// Cache entries.
    pub cache_entries: Gauge,
    /// Bytes charged to the cache.
    pub cache_bytes: Gauge,
    /// Stale answers served.
    pub cache_stale_answers: Counter,
    /// Background refreshes of stale names: fresh, failed.
    cache_refreshes: [Counter; 2],
    /// Query-log records written.
    pub log_records: Counter,
    /// Query-log records dropped.
    pub log_dropped: Counter,
    /// Query-log write errors.
    pub log_errors: Counter,
    /// Open TCP connections.
    pub tcp_connections: Gauge,
    /// Reloads that succeeded.
    pub reload_success: Counter,
    /// Reloads that failed.
    pub reload_failure: Counter,
    /// Time of the last successful load.
    pub last_success: Gauge,
    /// Queries over the rate limit: dropped, slipped.
    pub rate_limited: [Counter; 2],
    /// Temporary allows in force.
    pub temporary_allows: Gauge,
    /// Answers a temporary allow let through.
    pub temporary_allow_answers: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A new recorder with every family described and its fixed series at 0.
    pub fn new() -> Self {
        let recorder = Arc::new(PrometheusBuilder::new().build_recorder());
        for (name, kind, help) in FAMILIES {
            let key = KeyName::from_const_str(name);
            let help = SharedString::const_str(help);
            match *kind {
                "counter" => recorder.describe_counter(key, None, help),
                "gauge" => recorder.describe_gauge(key, None, help),
                // Rendered with their help by `histogram`.
                _ => {}
            }
        }
        let handle = recorder.handle();
        let histograms = histogram::Families::default();
        let r = &recorder;
        let m = Self {
            responses: RCODES
                .iter()
                .map(|c| counter(r, "cutoff_responses_total", &[("rcode", c)]))
                .collect(),
            durations: PATHS
                .iter()
                .map(|p| histograms.series(family(QUERY_DURATION), QUERY_BUCKETS, &[("path", p)]))
                .collect(),
            drops: DROP_REASONS
                .iter()
                .map(|d| counter(r, "cutoff_dropped_total", &[("reason", d)]))
                .collect(),
            cache_hits: counter(r, "cutoff_cache_hits_total", &[]),
            temporary_allows: gauge(r, "cutoff_temporary_allows", &[]),
            temporary_allow_answers: counter(r, "cutoff_temporary_allow_answers_total", &[]),
            cache_misses: counter(r, "cutoff_cache_misses_total", &[]),
            cache_entries: gauge(r, "cutoff_cache_entries", &[]),
            cache_bytes: gauge(r, "cutoff_cache_bytes", &[]),
            cache_stale_answers: counter(r, "cutoff_cache_stale_answers_total", &[]),
            cache_refreshes: [
                counter(r, "cutoff_cache_refreshes_total", &[("result", "fresh")]),
                counter(r, "cutoff_cache_refreshes_total", &[("result", "failed")]),
            ],
            log_records: counter(r, "cutoff_querylog_records_total", &[]),
            log_dropped: counter(r, "cutoff_querylog_dropped_total", &[]),
            log_errors: counter(r, "cutoff_querylog_write_errors_total", &[]),
            tcp_connections: gauge(r, "cutoff_tcp_connections", &[]),
            reload_success: counter(r, "cutoff_config_reloads_total", &[("result", "success")]),
            reload_failure: counter(r, "cutoff_config_reloads_total", &[("result", "failure")]),
            last_success: gauge(
                r,
                "cutoff_config_last_reload_success_timestamp_seconds",
                &[],
            ),
            rate_limited: [
                counter(r, "cutoff_rate_limited_total", &[("action", "drop")]),
                counter(r, "cutoff_rate_limited_total", &[("action", "slip")]),
            ],
            recorder,
            handle,
            histograms,
        };
        gauge(
            &m.recorder,
            "cutoff_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
        )
        .set(1.0);
        m
    }

    /// The exposition text for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        self.histograms.render_into(&mut out);
        out
    }

    /// The refresh series of one URL list, every result at 0 (the list
    /// names come from the config, so the label set is bounded), and its
    /// last success as stored with its copy (`None`: never).
    pub fn list_refresh(&self, list: &str, results: &[&str], last_success: Option<f64>) {
        for result in results {
            let _ = counter(
                &self.recorder,
                "cutoff_list_refresh_total",
                &[("list", list), ("result", result)],
            );
        }
        let g = gauge(
            &self.recorder,
            "cutoff_list_last_success_timestamp_seconds",
            &[("list", list)],
        );
        if let Some(t) = last_success {
            g.set(t);
        }
    }

    /// Counts one refresh of a URL list; a success also sets its time.
    pub fn list_refreshed(&self, list: &str, result: &str, success_at: Option<f64>) {
        counter(
            &self.recorder,
            "cutoff_list_refresh_total",
            &[("list", list), ("result", result)],
        )
        .increment(1);
        if let Some(t) = success_at {
            gauge(
                &self.recorder,
                "cutoff_list_last_success_timestamp_seconds",
                &[("list", list)],
            )
            .set(t);
        }
    }

    /// Sets the SOA serial of a served RPZ zone.
    pub fn rpz_serial(&self, zone: &str, serial: u32) {
        gauge(&self.recorder, "cutoff_rpz_serial", &[("zone", zone)]).set(f64::from(serial));
    }

    /// Counts one NOTIFY by its result.
    pub fn rpz_notified(&self, result: &str) {
        counter(
            &self.recorder,
            "cutoff_rpz_notify_total",
            &[("result", result)],
        )
        .increment(1);
    }

    /// Creates the NOTIFY series at zero.
    pub fn rpz_notify_series(&self, results: &[&str]) {
        for result in results {
            let _ = counter(
                &self.recorder,
                "cutoff_rpz_notify_total",
                &[("result", result)],
            );
        }
    }

    /// Housekeeping the exporter needs now and then (its own histograms,
    /// which cutoff does not use, are drained then; `histogram` counts as
    /// it records).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Counts a background refresh of a stale name.
    pub fn cache_refresh(&self, fresh: bool) {
        self.cache_refreshes[usize::from(!fresh)].increment(1);
    }

    /// Counts a dropped query or connection.
    pub fn dropped(&self, why: Dropped) {
        self.drops[why as usize].increment(1);
    }

    /// Records a response code.
    pub fn rcode(&self, rcode: u8) {
        let i = match rcode {
            0..=5 => usize::from(rcode),
            _ => RCODES.len() - 1,
        };
        self.responses[i].increment(1);
    }

    /// Records how long an answer took, by path.
    pub fn duration(&self, answered: Answered, seconds: f64) {
        let i = match answered {
            Answered::Blocked => 0,
            Answered::Cached => 1,
            Answered::Forwarded => 2,
            _ => 3,
        };
        self.durations[i].record(seconds);
    }

    /// The handles for a config, registered (at zero) now.
    pub fn counters(&self, c: &Config, upstreams: &[String]) -> Counters {
        let r = &self.recorder;
        let nets: Vec<&str> = c
            .networks
            .iter()
            .map(|n| n.name.as_str())
            .chain(["none"])
            .collect();
        let mut queries = Vec::with_capacity(nets.len() * ACTIONS.len() * PROTOCOLS.len());
        for (i, net) in nets.iter().enumerate() {
            // Only combinations that can occur get a series: a client in no
            // network is refused, and a refused client is in no network;
            // `dot` and `doh` only with their listeners.
            let none = i + 1 == nets.len();
            for a in ACTIONS {
                for p in PROTOCOLS {
                    let listened = match p {
                        Protocol::Udp | Protocol::Tcp => true,
                        Protocol::Dot => c.tls.as_ref().is_some_and(|t| !t.listen.is_empty()),
                        Protocol::Doh => c.tls.as_ref().is_some_and(|t| !t.listen_https.is_empty()),
                    };
                    queries.push(if listened && none == (a == Verdict::Refuse) {
                        counter(
                            r,
                            "cutoff_queries_total",
                            &[
                                ("network", net),
                                ("action", a.as_str()),
                                ("protocol", p.as_str()),
                            ],
                        )
                    } else {
                        metrics::Counter::noop()
                    });
                }
            }
        }
        let mut matches = HashMap::default();
        let mut enforcing = Vec::new();
        for (n, net) in c.networks.iter().enumerate() {
            for (ri, rule) in c.rules.iter().enumerate() {
                if rule.networks.as_ref().is_some_and(|ns| !ns.contains(&n)) {
                    continue;
                }
                // The bypass rules block at all times; counting them would
                // say the cut-off is in force on a network before it is.
                if !rule.is_bypass() {
                    enforcing.push((
                        ri,
                        gauge(
                            r,
                            "cutoff_rule_enforcing",
                            &[("network", &net.name), ("rule", &rule.name)],
                        ),
                    ));
                }
                let actions: Vec<Action> = [Some(rule.action), rule.before, rule.after]
                    .into_iter()
                    .flatten()
                    .collect();
                for &l in &rule.lists {
                    // Only the categories the list has entries in (an
                    // uncategorised list: `none` alone) and the rule selects.
                    let cats: Vec<Option<Category>> = c.lists[l]
                        .active_by_category()
                        .into_keys()
                        .filter(|cat| match (&rule.categories, cat) {
                            (None, _) => true,
                            (Some(cs), Some(cat)) => cs.contains(cat),
                            (Some(_), None) => false,
                        })
                        .collect();
                    for cat in cats {
                        for &a in &actions {
                            let labels = [
                                ("network", net.name.as_str()),
                                ("list", c.lists[l].name.as_str()),
                                ("category", cat.map_or("none", Category::as_str)),
                                ("action", a.as_str()),
                                ("rule", rule.name.as_str()),
                            ];
                            matches
                                .entry((n, ri, l, Category::payload(cat), a))
                                .or_insert_with(|| {
                                    counter(r, "cutoff_policy_matches_total", &labels)
                                });
                        }
                    }
                }
            }
        }
        let mut unclassified = HashMap::default();
        for rule in &c.rules {
            let actions = [Some(rule.action), rule.before, rule.after];
            for &l in &rule.lists {
                let list = &c.lists[l];
                let Some(cat) = &list.catalogue else {
                    continue;
                };
                for zone in cat.zones().filter(|e| e.enabled) {
                    let selected = rule
                        .categories
                        .as_ref()
                        .is_none_or(|cs| cs.contains(&zone.category));
                    for a in actions.iter().flatten().filter(|_| selected) {
                        unclassified
                            .entry((l, Category::payload(Some(zone.category)), *a))
                            .or_insert_with(|| {
                                counter(
                                    r,
                                    "cutoff_unclassified_queries_total",
                                    &[
                                        ("list", list.name.as_str()),
                                        ("category", zone.category.as_str()),
                                        ("action", a.as_str()),
                                    ],
                                )
                            });
                    }
                }
            }
        }
        for l in &c.lists {
            for (cat, n) in l.active_by_category() {
                let cat = cat.map_or("none", Category::as_str);
                gauge(
                    r,
                    "cutoff_list_entries",
                    &[("list", &l.name), ("category", cat)],
                )
                .set(n as f64);
            }
        }
        let upstream = upstreams
            .iter()
            .map(|u| UpstreamHandles {
                ok: counter(
                    r,
                    "cutoff_upstream_requests_total",
                    &[("upstream", u), ("result", "ok")],
                ),
                error: counter(
                    r,
                    "cutoff_upstream_requests_total",
                    &[("upstream", u), ("result", "error")],
                ),
                duration: self.histograms.series(
                    family(UPSTREAM_DURATION),
                    UPSTREAM_BUCKETS,
                    &[("upstream", u)],
                ),
            })
            .collect();
        let clients = c
            .networks
            .iter()
            .map(|n| gauge(r, "cutoff_kaspersky_clients", &[("network", &n.name)]))
            .collect();
        gauge(r, "cutoff_config_info", &[("version", &c.version)]).set(1.0);
        gauge(r, "cutoff_rules_active", &[]).set(c.written_rules() as f64);
        // Only with a DoT certificate: a 0 would read as long expired.
        if let Some(end) = c.tls.as_ref().and_then(|t| t.not_after) {
            gauge(r, "cutoff_tls_certificate_expiry_timestamp_seconds", &[]).set(end as f64);
        }
        Counters {
            queries,
            matches,
            unclassified,
            enforcing,
            upstream,
            clients,
            version: c.version.clone(),
        }
    }

    /// Marks an earlier config version as no longer in force.
    pub fn retire(&self, version: &str) {
        gauge(
            &self.recorder,
            "cutoff_config_info",
            &[("version", version)],
        )
        .set(0.0);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles of one upstream.
#[derive(Debug)]
pub struct UpstreamHandles {
    /// Tries answered.
    pub ok: Counter,
    /// Tries failed.
    pub error: Counter,
    /// Round-trip times of answered tries.
    pub duration: Histogram,
}

/// The handles of one loaded config.
#[derive(Debug)]
pub struct Counters {
    queries: Vec<Counter>,
    matches: HashMap<(usize, usize, usize, u8, Action), Counter, RandomState>,
    unclassified: HashMap<(usize, u8, Action), Counter, RandomState>,
    enforcing: Vec<(usize, Gauge)>,
    /// Per upstream endpoint, in the runtime's order.
    pub upstream: Vec<UpstreamHandles>,
    /// `cutoff_kaspersky_clients` per network.
    pub clients: Vec<Gauge>,
    /// The config version they belong to.
    pub version: String,
}

impl Counters {
    /// Counts a query; `network` is `None` for refused clients.
    pub fn query(&self, network: Option<usize>, verdict: Verdict, protocol: Protocol) {
        let nets = self.queries.len() / (ACTIONS.len() * PROTOCOLS.len());
        let n = network.unwrap_or(nets - 1);
        let a = ACTIONS.iter().position(|x| *x == verdict).unwrap_or(0);
        let p = PROTOCOLS.iter().position(|x| *x == protocol).unwrap_or(0);
        if let Some(c) = self
            .queries
            .get((n * ACTIONS.len() + a) * PROTOCOLS.len() + p)
        {
            c.increment(1);
        }
    }

    /// Counts a rule match.
    pub fn matched(
        &self,
        network: usize,
        rule: usize,
        list: usize,
        category: Option<Category>,
        action: Action,
    ) {
        if let Some(c) =
            self.matches
                .get(&(network, rule, list, Category::payload(category), action))
        {
            c.increment(1);
        }
    }

    /// Counts a query that only a zone-wide entry covered.
    pub fn unclassified(&self, list: usize, category: Option<Category>, action: Action) {
        if let Some(c) = self
            .unclassified
            .get(&(list, Category::payload(category), action))
        {
            c.increment(1);
        }
    }

    /// Zeroes the gauges of this config (called on the config a reload
    /// replaces, before the new one sets its own), so a (network, rule) pair
    /// or a network that a reload removed does not keep its last value.
    pub fn retire(&self) {
        for (_, g) in &self.enforcing {
            g.set(0.0);
        }
        for g in &self.clients {
            g.set(0.0);
        }
    }

    /// Sets `cutoff_rule_enforcing` for the instant `now`.
    pub fn refresh_enforcing(&self, c: &Config, now: jiff::Timestamp) {
        for (rule, g) in &self.enforcing {
            let (action, _) = rule_at(&c.rules[*rule], now);
            g.set(if action == Some(Action::Block) {
                1.0
            } else {
                0.0
            });
        }
    }
}

fn key(name: &'static str, labels: &[(&str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new((*k).to_owned(), (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

fn counter(r: &PrometheusRecorder, name: &'static str, labels: &[(&str, &str)]) -> Counter {
    let c = r.register_counter(&key(name, labels), &META);
    // Touch it so the series is rendered (at 0) from start-up.
    c.increment(0);
    c
}

fn gauge(r: &PrometheusRecorder, name: &'static str, labels: &[(&str, &str)]) -> Gauge {
    let g = r.register_gauge(&key(name, labels), &META);
    g.increment(0.0);
    g
}

const QUERY_DURATION: &str = "cutoff_query_duration_seconds";
const UPSTREAM_DURATION: &str = "cutoff_upstream_duration_seconds";

/// The name and help text of a histogram family in [`FAMILIES`].
fn family(name: &'static str) -> (&'static str, &'static str) {
    let help = FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, _, help)| help);
    (name, help)
}
