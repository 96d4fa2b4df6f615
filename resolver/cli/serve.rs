//! `cutoff serve`: answer DNS on the configured addresses until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use super::{ConfigArg, bind, print_config_error};
use crate::config::Upstream;
use crate::metrics::Metrics;
use crate::networks;
use crate::querylog::{QueryLog, Target};
use crate::reload::{DRAIN, Overrides, RELOAD_TIMEOUT, Runtime, State};
use crate::server::{self, Limits, Listeners};

/// Arguments of `cutoff serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Answer DNS on this address, UDP and TCP (repeatable; replaces `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Forward to this upstream (repeatable; replaces `upstreams`):
    /// IP[:port] (UDP, TCP on truncation), udp://IP[:port], tcp://IP[:port],
    /// tls://IP[:port]#servername (DNS over TLS), https://IP[:port]/path#servername
    /// (DNS over HTTPS), or `system` (/etc/resolv.conf).
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    upstream: Vec<Upstream>,
    /// Serve /metrics, /healthz, /readyz and /api/v1/clients here (replaces `http`).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Write the JSON query log to this file, or `-` for stdout (replaces `query_log.path`).
    #[arg(long, value_name = "PATH|-")]
    query_log: Option<String>,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        env = "CUTOFF_LOG_LEVEL"
    )]
    log_level: String,
    /// Where `system` upstreams are read from.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/resolv.conf",
        hide = true
    )]
    resolv_conf: PathBuf,
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    Upstream::parse(s).map_err(|e| e.to_string())
}

fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // hickory-proto logs per packet (a WARN for a truncated EDNS option):
    // a flood of such packets must not flood the log, so it is held to
    // errors unless RUST_LOG asks for it.
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{level},hickory_proto=error,hickory_net=error"));
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: the journal and `kubectl logs` get plain text.
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(crate::lograte::RateLimit::new())
        .with(fmt)
        .try_init();
}

pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log_level);
    let overrides = Overrides {
        listen: args.listen.clone(),
        upstreams: args.upstream.clone(),
        http: args.http,
        query_log: args.query_log.clone(),
    };
    let config = match State::load_config(args.config.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            print_config_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    // One worker per UDP receive loop of an address (`server::run` opens them).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.serve.threads())
        .enable_all()
        .build()?;
    rt.block_on(serve(config, args, overrides))
}

async fn serve(
    config: crate::config::Config,
    args: &ServeArgs,
    overrides: Overrides,
) -> anyhow::Result<ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        Ok(ExitCode::FAILURE)
    };
    // Before binding: running out of descriptors later looks like a dead
    // upstream (every uncached query gets SERVFAIL).
    let need = crate::descriptors::Need::of(&config);
    match crate::descriptors::ensure(need) {
        Ok(crate::descriptors::Checked::Raised { from, to }) => tracing::info!(
            "raised the open-files limit from {from} to {to}: the config needs {need}"
        ),
        Ok(crate::descriptors::Checked::Enough { .. }) => {}
        Err(e) => return fail(&e),
    }
    // `required` URL lists: fatal without a copy (start-up never fetches).
    let missing = crate::refresh::missing_required(&config);
    if !missing.is_empty() {
        return fail(&missing.join("\n"));
    }
    // A host without `::1` (or without IPv6) still serves on the rest.
    let (listen, skipped) = bind::usable(&config.listen);
    for w in &skipped {
        tracing::warn!("{w}");
    }
    let mut listeners = match Listeners::bind(&listen).await {
        Ok(l) => l,
        Err(e) => return fail(&bind::explain_listen(&listen, &e)),
    };
    if let Some(t) = &config.tls {
        let settings = server::TlsSettings {
            server: t.server.clone(),
            handshake_timeout: t.handshake_timeout,
        };
        if let Err(e) = listeners.bind_tls(&t.listen, settings) {
            return fail(&e);
        }
    }
    let http = match crate::http::bind(config.http).await {
        Ok(l) => l,
        Err(e) => return fail(&bind::explain_http(config.http, &e)),
    };
    let metrics = Arc::new(Metrics::new());
    let query_log = match &config.query_log.path {
        None => None,
        Some(p) => match QueryLog::start(Target::parse(p), config.query_log.queue, metrics.clone())
        {
            Ok(q) => Some(q),
            Err(e) => return fail(&e),
        },
    };
    let bound = listeners.addrs();
    let bound_tls = listeners.tls_addrs();
    let runtime = match Runtime::build(config, &args.resolv_conf, &metrics) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    for addr in bound.iter().chain(&bound_tls) {
        if !networks::is_private(addr.ip()) {
            tracing::warn!(%addr, "listening on an address that is not loopback or private: only `access.allow` stands between this resolver and the internet");
        }
    }
    let c = &runtime.policy.config;
    let limits = Limits {
        inflight: c.serve.max_inflight,
        tcp_connections: c.serve.tcp_max_connections,
        tcp_per_client: c.serve.tcp_max_per_client,
        tcp_idle: c.serve.tcp_idle_timeout,
        tcp_queries: c.serve.tcp_max_queries,
    };
    let upstreams: Vec<String> = runtime
        .upstreams
        .endpoints
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        listen = ?bound,
        listen_tls = ?bound_tls,
        upstreams = ?upstreams,
        http = %http.local_addr().unwrap_or(c.http),
        query_log = c.query_log.path.as_deref().unwrap_or("off"),
        config = %c.origin,
        version = %c.version,
        "serving"
    );
    let state = Arc::new(State::new(
        runtime,
        args.config.config.clone(),
        overrides,
        args.resolv_conf.clone(),
        metrics,
        query_log,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = Admin::start(http, state.clone());
    let signals = tokio::spawn(signals(state.clone(), stop_tx, admin));
    tokio::spawn(ticks(state.clone(), stop_rx.clone()));
    tokio::spawn(crate::refresh::run(state.clone(), stop_rx.clone(), reload));
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    server::run(listeners, state.clone(), limits, stop_rx, DRAIN).await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), signals).await;
    if let Some(log) = &state.query_log {
        log.flush(std::time::Duration::from_secs(2));
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Keeps the time-driven gauges (rule phases, distinct clients) current
/// between scrapes, and the exporter tidy.
async fn ticks(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
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

/// One behaviour per signal (docs/operations.md): HUP reloads, USR1 reopens
/// the query log, TERM and INT stop gracefully.
async fn signals(state: Arc<State>, stop: watch::Sender<bool>, mut admin: Admin) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let mut reloading: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // A reload is a task of its own, so this loop keeps serving
                // TERM and USR1 whatever the reload waits for.
                if reloading.as_ref().is_some_and(|r| !r.is_finished()) {
                    tracing::warn!("SIGHUP ignored: the previous reload is still running");
                    continue;
                }
                reloading = Some(tokio::spawn(reload(state.clone())));
            }
            // When a reload has finished, a changed `http` address is
            // applied here, where the admin server lives (a no-op when the
            // reload failed: the running config is unchanged).
            _ = async {
                if let Some(task) = reloading.as_mut() {
                    let _ = task.await;
                }
            }, if reloading.is_some() => {
                reloading = None;
                let wanted = state.current.load().policy.config.http;
                admin.apply(wanted, &state).await;
            }
            _ = usr1.recv() => {
                if let Some(log) = &state.query_log {
                    log.reopen();
                    tracing::info!("query log will be reopened");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Load balancers stop sending before the listeners close.
    state
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        "stopping: no new queries, {}s for those in flight",
        DRAIN.as_secs()
    );
    let _ = stop.send(true);
    admin.stop().await;
}

/// The admin endpoint's server; replaced when a reload changes `http`.
struct Admin {
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Admin {
    fn start(listener: tokio::net::TcpListener, state: Arc<State>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| state.current.load().policy.config.http);
        let task = tokio::spawn(crate::http::run(listener, state, stopped));
        Self { addr, stop, task }
    }

    /// Moves the endpoint to `wanted` when it differs: the new address is
    /// bound first, and only then is the old server stopped, so a bind that
    /// fails keeps the old socket serving.
    async fn apply(&mut self, wanted: std::net::SocketAddr, state: &Arc<State>) {
        if wanted == self.addr {
            return;
        }
        match crate::http::bind(wanted).await {
            Ok(listener) => {
                let old = std::mem::replace(self, Self::start(listener, state.clone()));
                tracing::info!(from = %old.addr, to = %self.addr, "admin endpoint moved (`http` changed)");
                old.stop().await;
            }
            Err(e) => tracing::warn!(
                "`http` changed to {wanted}, but {}; the admin endpoint stays on {}",
                bind::explain_http(wanted, &e).replace('\n', ";"),
                self.addr
            ),
        }
    }

    /// Stops the server, waiting a little for requests in flight.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}

/// One reload, built off the query path and bounded in time; a failure or
/// a timeout keeps the running policy.
async fn reload(state: Arc<State>) {
    let work = {
        let state = state.clone();
        move || state.reload()
    };
    match crate::reload::bounded(RELOAD_TIMEOUT, work).await {
        Some(Ok(version)) => tracing::info!(%version, "reloaded"),
        Some(Err(e)) => {
            tracing::error!("reload failed, keeping the running config: {e}");
            if let crate::reload::BuildError::Config(crate::config::ConfigError::Invalid {
                problems,
                ..
            }) = &e
            {
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
