//! The admin endpoint: the status page (`/`), `/metrics`, `/healthz`,
//! `/readyz` and the JSON API under `/api/v1/` (docs/api.md). Reads are
//! GET; the only writes (temporary allows and reload, `write`) need the
//! bearer token of `http.token_file` (`auth`); other methods get 405. It
//! binds 127.0.0.1:9153 by default.
//!
//! Connections are capped ([`MAX_CONNECTIONS`], well under the descriptor
//! limit, so a flood on this port cannot take the sockets DNS needs), each
//! request's headers must arrive within [`HEADER_TIMEOUT`] (which also ends
//! an idle keep-alive connection), and no connection lives longer than
//! [`CONNECTION_LIFETIME`] (slow readers). Every response carries a strict
//! `Content-Security-Policy` (nothing from elsewhere, no script, no framing)
//! and `X-Content-Type-Options: nosniff`; no cookie is ever set.
//!
//! Sits beside the query flow and shares only the `State` with it. It takes
//! unauthenticated input, so nothing here may panic (docs/adr/0003-panic-abort.md).

#![deny(clippy::arithmetic_side_effects)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::runtime::State;

mod api;
mod auth;
mod html;
mod page;
mod rpz;
pub mod status;
mod write;

pub use api::{ClientsQueryError, ExplainQueryError, RecentRow, clients_since};
pub use html::escape;
pub use status::{Status, status};
pub use write::{AllowRequest, ReloadResult};

/// The `Content-Security-Policy` of every response: nothing is loaded from
/// anywhere else, no script runs, the one style sheet comes from here,
/// forms only go back here, no framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The largest request body the admin endpoint reads (413 above it).
pub const MAX_BODY: usize = 4096;

/// The routes, for serving and for tests.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route("/style.css", get(page::style))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(api::ready))
        .route("/api/v1/clients", get(api::clients))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/recent", get(api::recent))
        .route("/api/v1/explain", get(api::explain))
        .route("/rpz/{file}", get(rpz::zone))
        .route("/export/{file}", get(rpz::list))
        .route(
            "/api/v1/allow",
            get(write::list).post(write::add).delete(write::remove),
        )
        .route("/api/v1/reload", post(write::reload))
        // A write carries a name, a network and a duration: far under this.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::read_gate,
        ))
        .layer(axum::middleware::map_response(secure))
        .with_state(state)
}

/// The headers every response carries (the status page and the API alike).
async fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
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
