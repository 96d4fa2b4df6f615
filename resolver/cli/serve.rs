//! `cutoff serve`: answer DNS on the configured addresses until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{ConfigArg, print_config_error};
use crate::config::{Overrides, Upstream};
use crate::reload::DRAIN;
use crate::runtime::State;
use crate::service::{self, Service};

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
    #[arg(long, value_name = "URL", value_parser = Upstream::parse)]
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
    let options = service::Options {
        config_path: args.config.config.clone(),
        overrides,
        resolv_conf: args.resolv_conf.clone(),
        drain: DRAIN,
        refresh_lists: true,
    };
    let mut service = match service::start(config, options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    signals(&mut service).await;
    tracing::info!(
        "stopping: no new queries, {}s for those in flight",
        DRAIN.as_secs()
    );
    service.stop().await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// One behaviour per signal (docs/operations.md): HUP reloads, USR1 reopens
/// the query log, TERM and INT stop gracefully. Returns when the service
/// is to stop (or its listeners stopped on their own).
async fn signals(service: &mut Service) {
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
    let mut watchdog = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // A reload is a task of its own, so this loop keeps serving
                // TERM and USR1 whatever the reload waits for.
                if reloading.as_ref().is_some_and(|r| !r.is_finished()) {
                    tracing::warn!("SIGHUP ignored: the previous reload is still running");
                    continue;
                }
                reloading = Some(tokio::spawn(crate::reload::run(service.state.clone())));
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
                service.after_reload().await;
            }
            _ = usr1.recv() => {
                if let Some(log) = &service.state.query_log {
                    log.reopen();
                    tracing::info!("query log will be reopened");
                }
            }
            _ = watchdog.tick() => {
                if service.has_stopped() {
                    return;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
}
