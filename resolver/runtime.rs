//! The running state a query reads: the current [`Runtime`] (policy,
//! upstreams, metric handles) behind one lock-free pointer, and the
//! process-wide [`State`] around it (cache, query log, client table,
//! limiter), which lives as long as the process.
//!
//! Every listener holds the `State`; each query loads the current runtime
//! once and uses it to the end, so a reload (`reload`, above this module)
//! never blocks or changes a query in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;

use crate::cache::{BoxedKey, Cache, Entry, Limits};
use crate::clients::ClientTable;
use crate::config::Overrides;
use crate::metrics::{Counters, Metrics};
use crate::policy::Snapshot;
use crate::querylog::QueryLog;
use crate::upstream::Upstreams;

/// Everything a query needs that a reload may change.
#[derive(Debug)]
pub struct Runtime {
    /// The policy.
    pub policy: Snapshot,
    /// Where allowed queries go.
    pub upstreams: Upstreams,
    /// Metric handles for this config's label values.
    pub counters: Counters,
    /// Network names, shared with the client table.
    pub network_names: Vec<Arc<str>>,
}

impl crate::querylog::Names for Runtime {
    fn config(&self) -> &crate::config::Config {
        &self.policy.config
    }

    fn upstream(&self, index: usize) -> Option<String> {
        self.upstreams.endpoints.get(index).map(ToString::to_string)
    }
}

/// The process-wide state shared by every listener.
#[derive(Debug)]
pub struct State {
    /// The current runtime; replaced whole on reload.
    pub current: ArcSwap<Runtime>,
    /// Upstream answers, kept across reloads.
    pub cache: Cache,
    /// The config file (`None`: the embedded default).
    pub config_path: Option<PathBuf>,
    /// Command-line overrides.
    pub overrides: Overrides,
    /// Where `system` upstreams come from.
    pub resolv_conf: PathBuf,
    /// The metrics recorder and its fixed handles.
    pub metrics: Arc<Metrics>,
    /// The query log, when one is configured.
    pub query_log: Option<QueryLog>,
    /// Clients that asked for listed names.
    pub clients: ClientTable,
    /// Recent listed lookups for the status page.
    pub activity: crate::activity::Activity,
    /// Set once the listeners are bound (for `/readyz`).
    pub ready: AtomicBool,
    /// Per-client buckets (`rate_limit`), kept across reloads.
    pub limiter: crate::ratelimit::Limiter,
    /// The RPZ zones in force (`rpz:`), built by `rpz::run`.
    pub rpz: crate::export::zones::Feed,
    /// Temporary allows (`cutoff allow`), kept across reloads.
    pub allows: crate::allows::Allows,
    /// The admin endpoint's bearer tokens, read again on every reload.
    pub tokens: ArcSwap<crate::config::Tokens>,
}

/// Why the admin side of the state could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A token file of `http` is unusable.
    #[error(transparent)]
    Token(#[from] crate::config::TokenFileError),
    /// The temporary allows file is unusable.
    #[error(transparent)]
    Allows(#[from] crate::allows::AllowError),
}

impl State {
    /// The first state.
    pub fn new(
        runtime: Runtime,
        config_path: Option<PathBuf>,
        overrides: Overrides,
        resolv_conf: PathBuf,
        metrics: Arc<Metrics>,
        query_log: Option<QueryLog>,
    ) -> Self {
        let serve = &runtime.policy.config.serve;
        let limits = Limits {
            max_bytes: serve.cache_max_bytes,
            max_entries: serve.cache_size,
            stale_for: serve.cache_stale_for,
            stale_refresh: serve.cache_stale_refresh,
        };
        let cache = Cache::new(limits, metrics.cache_stale_answers.clone());
        metrics.last_success.set(now_seconds());
        Self {
            current: ArcSwap::from_pointee(runtime),
            cache,
            config_path,
            overrides,
            resolv_conf,
            metrics,
            query_log,
            clients: ClientTable::new(crate::clients::DEFAULT_CAP),
            activity: crate::activity::Activity::new(),
            ready: AtomicBool::new(false),
            limiter: crate::ratelimit::Limiter::new(),
            rpz: crate::export::zones::Feed::default(),
            allows: crate::allows::Allows::new(None),
            tokens: ArcSwap::from_pointee(crate::config::Tokens::default()),
        }
    }

    /// The same state with the admin endpoint's tokens and the temporary
    /// allows stored under `state_dir` (what `serve` starts with); an
    /// unusable token file or a corrupt allows file is an error.
    pub fn with_admin(self) -> Result<Self, AdminError> {
        let config = self.current.load_full().policy.config.clone();
        let tokens = config.admin.tokens()?;
        let now = jiff::Timestamp::now();
        let allows = crate::allows::Allows::open(&config.serve.state_dir, now)?;
        self.tokens.store(Arc::new(tokens));
        Ok(self.with_allows(allows))
    }

    /// The same state with these temporary allows (read from `state_dir`
    /// at start; the default keeps them in memory only).
    pub fn with_allows(mut self, allows: crate::allows::Allows) -> Self {
        self.metrics
            .temporary_allows
            .set(allows.list(jiff::Timestamp::now()).len() as f64);
        self.allows = allows;
        self
    }

    /// Updates the gauges that change with time rather than with queries:
    /// rule phases, distinct clients, cache size. Called every few seconds.
    pub fn tick(&self) {
        let runtime = self.current.load();
        let now = jiff::Timestamp::now();
        runtime
            .counters
            .refresh_enforcing(&runtime.policy.config, now);
        let day_ago = now - jiff::SignedDuration::from_hours(24);
        let seen = self.clients.distinct_since(day_ago);
        for (name, gauge) in runtime.network_names.iter().zip(&runtime.counters.clients) {
            gauge.set(seen.get(name).copied().unwrap_or(0) as f64);
        }
        self.metrics.cache_entries.set(self.cache.len() as f64);
        self.metrics.cache_bytes.set(self.cache.bytes() as f64);
        match self.allows.expire(now) {
            Ok(n) => self.metrics.temporary_allows.set(n as f64),
            Err(e) => tracing::warn!("temporary allows: {e}"),
        }
        self.metrics.upkeep();
    }

    /// Asks the upstreams of the running config for `key` once; a cacheable
    /// answer replaces the stale one (RFC 8767 §5, queued by
    /// [`crate::cache::refresh`]). Counted in `cutoff_cache_refreshes_total`.
    pub async fn refresh_stale(&self, key: &BoxedKey) {
        let Some(query) = key.query() else {
            return;
        };
        let runtime = self.current.load_full();
        let max_ttl = runtime.policy.config.serve.cache_max_ttl;
        let upstreams = &runtime.upstreams;
        let handles = &runtime.counters.upstream;
        let entry = self
            .cache
            .fetch(key, || async {
                let answer = upstreams.forward(&query, handles).await.ok()?;
                Entry::new(answer.bytes, answer.endpoint, max_ttl)
            })
            .await;
        // SERVFAIL and zero-TTL answers are not stored: the name stays stale.
        let fresh = entry.is_some_and(|e| !e.ttl.is_zero());
        self.metrics.cache_refresh(fresh);
    }
}

/// Seconds since the Unix epoch, for the `last_success` gauge.
pub(crate) fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
