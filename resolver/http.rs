//! The admin endpoint: `/metrics`, `/healthz`, `/readyz` and the read-only
//! `/api/v1/clients`. Nothing on this port changes state; only GET is
//! routed (other methods get 405). It binds 127.0.0.1:9153 by default.
//!
//! Connections are capped ([`MAX_CONNECTIONS`], well under the descriptor
//! limit, so a flood on this port cannot take the sockets DNS needs), each
//! request's headers must arrive within [`HEADER_TIMEOUT`] (which also ends
//! an idle keep-alive connection), and no connection lives longer than
//! [`CONNECTION_LIFETIME`] (slow readers).
//!
//! Sits beside the query flow and shares only the `State` with it. It takes
//! unauthenticated input, so nothing here may panic (docs/adr/0003-panic-abort.md).

#![deny(clippy::arithmetic_side_effects)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as AxState};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::reload::State;

/// The routes, for serving and for tests.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/clients", get(clients))
        .with_state(state)
}

/// Binds the admin address (an error names it).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on http {addr}: {e}")))
}

/// Admin connections open at once. Scrapers and `cutoff report` need a
/// handful; the rest of the descriptor budget belongs to DNS.
pub const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a request's headers, counted from when the connection
/// starts waiting for it (so an idle keep-alive connection is closed too).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The limits of the admin endpoint (the constants above, or smaller in tests).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`CONNECTION_LIFETIME`].
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            lifetime: CONNECTION_LIFETIME,
        }
    }
}

/// Serves with the default limits until shutdown.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve(listener, state, shutdown, Limits::default()).await
}

/// Serves until shutdown, within `limits`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) -> std::io::Result<()> {
    let router = router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        // Take a slot before accepting: over the cap, new connections wait in
        // the kernel's backlog and hold no descriptor of this process.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before
                // accept: say so now and then, wait, try again.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("admin endpoint: accept failed: {e}");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_headers(64)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep(limits.lifetime) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn metrics(AxState(state): AxState<Arc<State>>) -> Response {
    // Gauges that follow time, not queries, are fresh at every scrape.
    state.tick();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn ready(AxState(state): AxState<Arc<State>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners not bound yet\n",
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct Since {
    since: Option<String>,
}

/// Why a `/api/v1/clients` query string was refused (400).
#[derive(Debug, thiserror::Error)]
pub enum ClientsQueryError {
    /// Not a query string this endpoint reads (an unknown encoding, a
    /// repeated `since`).
    #[error(transparent)]
    Query(#[from] QueryRejection),
    /// `since` is not a duration, instant or date.
    #[error(transparent)]
    Since(#[from] crate::since::SinceError),
}

/// The `since` of a `/api/v1/clients` request, read from its URI as the
/// handler reads it: `None` when absent.
pub fn clients_since(uri: &Uri, now: Timestamp) -> Result<Option<Timestamp>, ClientsQueryError> {
    let Query(q) = Query::<Since>::try_from_uri(uri)?;
    Ok(q.since.map(|s| crate::since::parse(&s, now)).transpose()?)
}

async fn clients(AxState(state): AxState<Arc<State>>, uri: Uri) -> Response {
    let since = match clients_since(&uri, Timestamp::now()) {
        Ok(since) => since,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let runtime = state.current.load();
    let log = &runtime.policy.config.query_log;
    let rows = state.clients.rows(since, |ip| {
        crate::querylog::client_text(SocketAddr::new(ip, 0), log).0
    });
    axum::Json(rows).into_response()
}
