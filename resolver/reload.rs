//! Building the running state and replacing it: a reload (SIGHUP) loads
//! and validates the whole config, builds a new [`Runtime`] off the query
//! path, and swaps it into the [`State`] with one atomic store, or keeps the
//! running one and logs every problem. Queries never wait for a reload: each
//! loads the current runtime once, lock-free, and uses it to the end.
//!
//! Above [`crate::runtime`], which holds what a query reads; nothing on the
//! query path imports this module.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, ConfigError, Overrides};
use crate::metrics::Metrics;
use crate::policy::Snapshot;
use crate::runtime::{Runtime, State, now_seconds};
use crate::upstream::{SetupError, Upstreams};

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

impl State {
    /// Loads the config (file or embedded default) with the overrides.
    pub fn load_config(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let c = match path {
            Some(p) => config::load(p)?,
            None => config::load_default()?,
        };
        Ok(overrides.apply(c))
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

/// One reload as SIGHUP and a list refresh run it: built off the query
/// path, bounded by [`RELOAD_TIMEOUT`], and logged; a failure or a timeout
/// keeps the running policy.
pub async fn run(state: Arc<State>) {
    let work = {
        let state = state.clone();
        move || state.reload()
    };
    match bounded(RELOAD_TIMEOUT, work).await {
        Some(Ok(version)) => tracing::info!(%version, "reloaded"),
        Some(Err(e)) => {
            tracing::error!("reload failed, keeping the running config: {e}");
            if let BuildError::Config(crate::config::ConfigError::Invalid { problems, .. }) = &e {
                for p in problems {
                    tracing::error!("  {p}");
                }
            }
        }
        None => {
            state.metrics.reload_failure.increment(1);
            tracing::error!(
                "reload did not finish within {}s (a config or list file that never ends, or a hung mount?); keeping the running config",
                RELOAD_TIMEOUT.as_secs()
            );
        }
    }
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
