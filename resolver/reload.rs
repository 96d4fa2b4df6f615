//! The running state, and replacing it: a reload (SIGHUP) loads and
//! validates the whole config, builds a new [`Runtime`] off the query path,
//! and swaps it in with one atomic store, or keeps the running one and logs
//! every problem. Queries never wait for a reload: each loads the current
//! runtime once, lock-free, and uses it to the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::cache::Cache;
use crate::config::{self, Config, ConfigError};
use crate::policy::Snapshot;
use crate::upstream::{SetupError, Upstreams};

/// Everything a query needs that a reload may change.
#[derive(Debug)]
pub struct Runtime {
    /// The policy.
    pub policy: Snapshot,
    /// Where allowed queries go.
    pub upstreams: Upstreams,
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
}

impl Runtime {
    /// Builds a runtime from a validated config.
    pub fn build(config: Config, resolv_conf: &Path) -> Result<Self, SetupError> {
        let upstreams = Upstreams::new(
            &config.upstreams,
            config.serve.upstream_timeout,
            &config.listen,
            resolv_conf,
        )?;
        Ok(Self {
            policy: Snapshot::new(config),
            upstreams,
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
    ) -> Self {
        let cache = Cache::new(runtime.policy.config.serve.cache_size);
        Self {
            current: ArcSwap::from_pointee(runtime),
            cache,
            config_path,
            overrides,
            resolv_conf,
        }
    }

    /// Reloads: on success the new runtime is in force and its config
    /// version is returned; on failure the running one stays.
    pub fn reload(&self) -> Result<String, BuildError> {
        let config = Self::load_config(self.config_path.as_deref(), &self.overrides)?;
        let old = self.current.load();
        if config.listen != old.policy.config.listen {
            tracing::warn!(
                "`listen` changed: listeners change only on restart; the new addresses are ignored until then"
            );
        }
        let runtime = Runtime::build(config, &self.resolv_conf)?;
        let version = runtime.policy.config.version.clone();
        self.current.store(Arc::new(runtime));
        Ok(version)
    }
}

/// How long `serve` waits for in-flight queries after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(5);
