//! The whole server, started the way `cutoff serve` starts it: a validated
//! config in; the descriptor check, the `required` lists, every listener
//! (UDP, TCP, DoT, admin) bound; the query log, the runtime and the shared
//! state built; the admin endpoint, the gauges' ticks, the URL-list
//! refresher and the listeners started; out comes a [`Service`] with the
//! bound addresses and a shutdown.
//!
//! The top of the library, just under `cli`: `cutoff serve` and the
//! integration tests both call [`start`], so what the tests run is what
//! the binary runs. Signals stay in `cli`: the service only offers what
//! they trigger ([`crate::reload::run`], [`Service::after_reload`],
//! [`Service::stop`]).

mod admin;
pub(crate) mod bind;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Overrides};
use crate::metrics::Metrics;
use crate::querylog::{QueryLog, Target};
use crate::runtime::{Runtime, State};
use crate::server::{self, Limits, Listeners};

use admin::Admin;

/// What the command line (or a test) adds to the config.
#[derive(Clone, Debug)]
pub struct Options {
    /// The config file, re-read on reload (`None`: the embedded default).
    pub config_path: Option<PathBuf>,
    /// Command-line values laid over every load.
    pub overrides: Overrides,
    /// Where `system` upstreams are read from.
    pub resolv_conf: PathBuf,
    /// How long a shutdown waits for queries in flight.
    pub drain: Duration,
    /// Run the URL-list refresher (off only where a test drives its own).
    pub refresh_lists: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config_path: None,
            overrides: Overrides::default(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            drain: crate::reload::DRAIN,
            refresh_lists: true,
        }
    }
}

/// Why the server did not start; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Too few file descriptors for the config, and the limit cannot be raised.
    #[error(transparent)]
    Descriptors(#[from] crate::descriptors::TooFew),
    /// `required` URL lists without a last-good copy (one line each).
    #[error("{}", .0.join("\n"))]
    MissingLists(Vec<String>),
    /// A DNS listen address could not be bound (the text names the likely cause).
    #[error("{explained}")]
    Listen {
        /// The addresses asked for.
        addrs: Vec<SocketAddr>,
        /// What went wrong, with the likely cause.
        explained: String,
    },
    /// A DoT listen address could not be bound.
    #[error(transparent)]
    Tls(io::Error),
    /// The admin endpoint could not be bound.
    #[error("{explained}")]
    Http {
        /// What went wrong, with the likely cause.
        explained: String,
    },
    /// The query log could not be opened.
    #[error(transparent)]
    QueryLog(io::Error),
    /// The upstreams are unusable.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::SetupError),
}

/// A running server: its addresses, its state, and how to stop it.
pub struct Service {
    /// The DNS addresses bound (UDP and TCP on each).
    pub addrs: Vec<SocketAddr>,
    /// The DoT addresses bound (`listen_tls`).
    pub tls_addrs: Vec<SocketAddr>,
    /// The admin endpoint's address.
    pub http: SocketAddr,
    /// The shared state (for reloads and inspection).
    pub state: Arc<State>,
    admin: Admin,
    stop: watch::Sender<bool>,
    server: JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("addrs", &self.addrs)
            .field("tls_addrs", &self.tls_addrs)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Starts the server for `config` (loaded with `options.overrides`
/// applied): binds every listener, then serves until [`Service::stop`].
pub async fn start(config: Config, options: Options) -> Result<Service, StartError> {
    // Before binding: running out of descriptors later looks like a dead
    // upstream (every uncached query gets SERVFAIL).
    let need = crate::descriptors::Need::of(&config);
    if let crate::descriptors::Checked::Raised { from, to } = crate::descriptors::ensure(need)? {
        tracing::info!("raised the open-files limit from {from} to {to}: the config needs {need}");
    }
    // `required` URL lists: fatal without a copy (start-up never fetches).
    let missing = crate::refresh::missing_required(&config);
    if !missing.is_empty() {
        return Err(StartError::MissingLists(missing));
    }
    // A host without `::1` (or without IPv6) still serves on the rest.
    let (listen, skipped) = bind::usable(&config.listen);
    for w in &skipped {
        tracing::warn!("{w}");
    }
    let mut listeners = Listeners::bind(&listen)
        .await
        .map_err(|e| StartError::Listen {
            explained: bind::explain_listen(&listen, &e),
            addrs: listen.clone(),
        })?;
    if let Some(t) = &config.tls {
        let settings = server::TlsSettings {
            server: t.server.clone(),
            handshake_timeout: t.handshake_timeout,
        };
        listeners
            .bind_tls(&t.listen, settings)
            .map_err(StartError::Tls)?;
    }
    let http = crate::http::bind(config.http)
        .await
        .map_err(|e| StartError::Http {
            explained: bind::explain_http(config.http, &e),
        })?;
    let metrics = Arc::new(Metrics::new());
    let query_log = match &config.query_log.path {
        None => None,
        Some(p) => Some(
            QueryLog::start(Target::parse(p), config.query_log.queue, metrics.clone())
                .map_err(StartError::QueryLog)?,
        ),
    };
    let addrs = listeners.addrs();
    let tls_addrs = listeners.tls_addrs();
    let runtime = Runtime::build(config, &options.resolv_conf, &metrics)?;
    for addr in addrs.iter().chain(&tls_addrs) {
        if !crate::networks::is_private(addr.ip()) {
            tracing::warn!(%addr, "listening on an address that is not loopback or private: only `access.allow` stands between this resolver and the internet");
        }
    }
    let limits = limits(&runtime.policy.config);
    let http_addr = http.local_addr().unwrap_or(runtime.policy.config.http);
    log_serving(&runtime, &addrs, &tls_addrs, http_addr);
    let state = Arc::new(State::new(
        runtime,
        options.config_path,
        options.overrides,
        options.resolv_conf,
        metrics,
        query_log,
    ));
    let (stop, stop_rx) = watch::channel(false);
    let admin = Admin::start(http, state.clone());
    tokio::spawn(ticks(state.clone(), stop_rx.clone()));
    if options.refresh_lists {
        tokio::spawn(crate::refresh::run(
            state.clone(),
            stop_rx.clone(),
            crate::reload::run,
        ));
    }
    state.ready.store(true, Ordering::Relaxed);
    let server = tokio::spawn(server::run(
        listeners,
        state.clone(),
        limits,
        stop_rx,
        options.drain,
    ));
    Ok(Service {
        addrs,
        tls_addrs,
        http: http_addr,
        state,
        admin,
        stop,
        server,
    })
}

impl Service {
    /// After a reload: moves the admin endpoint when `http` changed (a
    /// no-op when the reload failed: the running config is unchanged).
    pub async fn after_reload(&mut self) {
        let wanted = self.state.current.load().policy.config.http;
        self.admin.apply(wanted, &self.state).await;
    }

    /// Whether the listeners have stopped on their own (an error).
    pub fn has_stopped(&self) -> bool {
        self.server.is_finished()
    }

    /// Stops as SIGTERM does: `/readyz` turns false first (load balancers
    /// stop sending), then no new queries; those in flight get the drain
    /// time; the admin endpoint goes last and the query log is flushed.
    pub async fn stop(self) -> io::Result<()> {
        self.state.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let served = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        };
        self.admin.stop().await;
        if let Some(log) = &self.state.query_log {
            log.flush(Duration::from_secs(2));
        }
        served
    }
}

fn limits(c: &Config) -> Limits {
    Limits {
        inflight: c.serve.max_inflight,
        tcp_connections: c.serve.tcp_max_connections,
        tcp_per_client: c.serve.tcp_max_per_client,
        tcp_idle: c.serve.tcp_idle_timeout,
        tcp_queries: c.serve.tcp_max_queries,
    }
}

fn log_serving(runtime: &Runtime, addrs: &[SocketAddr], tls: &[SocketAddr], http: SocketAddr) {
    let c = &runtime.policy.config;
    let upstreams: Vec<String> = runtime
        .upstreams
        .endpoints
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        listen = ?addrs,
        listen_tls = ?tls,
        upstreams = ?upstreams,
        http = %http,
        query_log = c.query_log.path.as_deref().unwrap_or("off"),
        config = %c.origin,
        version = %c.version,
        "serving"
    );
}

/// Keeps the time-driven gauges (rule phases, distinct clients) current
/// between scrapes, and the exporter tidy.
async fn ticks(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {
                state.tick();
                crate::lograte::report_suppressed();
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
