//! The running state, and replacing it: a reload (SIGHUP) loads and
//! validates the whole config, builds a new [`Runtime`] off the query path,
//! and swaps it in with one atomic store, or keeps the running one and logs
//! every problem. Queries never wait for a reload: each loads the current
//! runtime once, lock-free, and uses it to the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::cache::{Cache, Limits};
use crate::clients::ClientTable;
use crate::config::{self, Config, ConfigError};
use crate::metrics::{Counters, Metrics};
use crate::policy::Snapshot;
use crate::querylog::QueryLog;
use crate::upstream::{SetupError, Upstreams};

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

/// Command-line values that override the config file on every (re)load.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Vec<std::net::SocketAddr>,
    /// `--upstream`.
    pub upstreams: Vec<config::Upstream>,
    /// `--http`.
    pub http: Option<std::net::SocketAddr>,
    /// `--query-log`.
    pub query_log: Option<String>,
}

impl Overrides {
    /// Applies the overrides to a loaded config.
    pub fn apply(&self, mut c: Config) -> Config {
        if !self.listen.is_empty() {
            c.listen.clone_from(&self.listen);
        }
        if !self.upstreams.is_empty() {
            c.upstreams.clone_from(&self.upstreams);
        }
        if let Some(h) = self.http {
            c.http = h;
        }
        if let Some(p) = &self.query_log {
            c.query_log.path = Some(p.clone());
        }
        c
    }
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The upstreams are unusable.
    #[error(transparent)]
    Upstream(#[from] SetupError),
    /// The new config has no rules, the running one has some, and the file
    /// does not say `forward_only: true`: most likely an emptied or
    /// truncated file, which would silently turn the sinkhole into a plain
    /// forwarder.
    #[error(
        "{origin} has no rules but the running config has {running}: refusing to stop blocking and logging; \
         write `forward_only: true` in the file if a plain forwarder is what you mean"
    )]
    DropsEveryRule {
        /// The file that was read.
        origin: String,
        /// Rules in the running config.
        running: usize,
    },
}

impl Runtime {
    /// Builds a runtime from a validated config, registering its metric
    /// series (at zero) in `metrics`.
    pub fn build(
        config: Config,
        resolv_conf: &Path,
        metrics: &Metrics,
    ) -> Result<Self, SetupError> {
        let upstreams = Upstreams::new(
            &config.upstreams,
            config.serve.upstream_timeout,
            &config.listen,
            resolv_conf,
            config.serve.upstream_ca.as_deref(),
        )?;
        let labels: Vec<String> = upstreams
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        let counters = metrics.counters(&config, &labels);
        counters.refresh_enforcing(&config, jiff::Timestamp::now());
        let network_names = config
            .networks
            .iter()
            .map(|n| Arc::from(n.name.as_str()))
            .collect();
        Ok(Self {
            policy: Snapshot::new(config),
            upstreams,
            counters,
            network_names,
        })
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
    pub rpz: crate::rpz::Feed,
}

impl State {
    /// Loads the config (file or embedded default) with the overrides.
    pub fn load_config(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let c = match path {
            Some(p) => config::load(p)?,
            None => config::load_default()?,
        };
        Ok(overrides.apply(c))
    }

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
            rpz: crate::rpz::Feed::default(),
        }
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
        self.metrics.upkeep();
    }

    /// Reloads: on success the new runtime is in force and its config
    /// version is returned; on failure the running one stays. Counted in
    /// `cutoff_config_reloads_total`.
    pub fn reload(&self) -> Result<String, BuildError> {
        let result = self.try_reload();
        match &result {
            Ok(_) => {
                self.metrics.reload_success.increment(1);
                self.metrics.last_success.set(now_seconds());
            }
            Err(_) => self.metrics.reload_failure.increment(1),
        }
        result
    }

    fn try_reload(&self) -> Result<String, BuildError> {
        let config = Self::load_config(self.config_path.as_deref(), &self.overrides)?;
        let old = self.current.load_full();
        let running = old.policy.config.written_rules();
        if config.written_rules() == 0 && running > 0 && !config.forward_only {
            return Err(BuildError::DropsEveryRule {
                origin: config.origin,
                running,
            });
        }
        // The same warnings as at start-up, so a reload that loads but looks
        // wrong is never silent.
        for w in &config.warnings {
            tracing::warn!("config: {w}");
        }
        if config.listen != old.policy.config.listen {
            tracing::warn!(
                "`listen` changed: listeners change only on restart; the new addresses are ignored until then"
            );
        }
        let tls_listen = |c: &crate::config::Config| c.tls.as_ref().map(|t| t.listen.clone());
        if tls_listen(&config) != tls_listen(&old.policy.config) {
            tracing::warn!(
                "`listen_tls` changed: DoT listeners change only on restart (the certificate is re-read now)"
            );
        }
        if config.query_log.path != old.policy.config.query_log.path {
            tracing::warn!(
                "`query_log.path` changed: it applies from the next restart; `events` and `client` apply now"
            );
        }
        let runtime = Runtime::build(config, &self.resolv_conf, &self.metrics)?;
        let version = runtime.policy.config.version.clone();
        if version != old.policy.config.version {
            self.metrics.retire(&old.policy.config.version);
        }
        old.counters.retire();
        self.current.store(Arc::new(runtime));
        self.tick();
        Ok(version)
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long `serve` waits for in-flight queries after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(5);

/// How long a reload may take before it is given up: far above a real one
/// (a large list loads in seconds), short enough that a hung read (a file
/// on a dead network mount) is reported.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `work` on a thread of its own and waits at most `limit` for it:
/// `None` when it has not finished by then. The thread is left to finish
/// (a blocking read cannot be cancelled) but nothing waits for it, so the
/// caller, and the process's exit, never hang on it.
pub async fn bounded<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("cutoff-reload".into())
        .spawn(move || {
            let _ = tx.send(work());
        });
    if spawned.is_err() {
        return None;
    }
    tokio::time::timeout(limit, rx).await.ok()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_never_finishes_is_given_up_after_the_limit() {
        let (_hold, blocked) = std::sync::mpsc::channel::<()>();
        let work = move || blocked.recv().is_ok();
        assert_eq!(bounded(RELOAD_TIMEOUT, work).await, None);
    }

    #[tokio::test]
    async fn work_that_finishes_gives_its_result() {
        assert_eq!(bounded(RELOAD_TIMEOUT, || 7).await, Some(7));
    }
}
