//! The admin endpoint: `/metrics`, `/healthz`, `/readyz` and the read-only
//! `/api/v1/clients`. Nothing on this port changes state; only GET is
//! routed (other methods get 405). It binds 127.0.0.1:9153 by default.
//!
//! Sits beside the query flow and shares only the `State` with it. It takes
//! unauthenticated input, so nothing here may panic (docs/adr/0002-panic-abort.md).

#![deny(clippy::arithmetic_side_effects)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as AxState};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Serves until shutdown.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
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
