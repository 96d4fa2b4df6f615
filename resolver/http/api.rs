//! The JSON side of the admin endpoint (docs/api.md): `/api/v1/status`,
//! `/api/v1/recent`, `/api/v1/explain`, `/api/v1/clients`, and `/metrics`,
//! `/readyz`. Read-only; beside the query flow.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as AxState};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::runtime::State;

pub(super) async fn metrics(AxState(state): AxState<Arc<State>>) -> Response {
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

pub(super) async fn ready(AxState(state): AxState<Arc<State>>) -> Response {
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

pub(super) async fn clients(AxState(state): AxState<Arc<State>>, uri: Uri) -> Response {
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

pub(super) async fn status(AxState(state): AxState<Arc<State>>) -> Response {
    axum::Json(super::status(&state, Timestamp::now())).into_response()
}

/// One recent blocked or logged lookup (`/api/v1/recent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRow {
    /// When it arrived.
    pub time: Timestamp,
    /// The client's network.
    pub network: String,
    /// The client, as the query log writes it (`query_log.client`).
    pub client: String,
    /// The name, escaped as the query log writes it.
    pub name: String,
    /// block or log.
    pub action: String,
    /// The matched entry's category.
    pub category: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
}

/// The ring, newest first, with clients redacted as the query log does.
pub(super) fn recent_rows(state: &State) -> Vec<RecentRow> {
    let runtime = state.current.load();
    let log = &runtime.policy.config.query_log;
    state
        .activity
        .recent()
        .into_iter()
        .map(|l| RecentRow {
            time: l.time,
            network: l.network.to_string(),
            client: crate::querylog::client_text(SocketAddr::new(l.client, 0), log).0,
            name: l.name.into_string(),
            action: l.verdict.as_str().to_owned(),
            category: l.category.map(|c| c.as_str().to_owned()),
            rule: l.rule.map(String::from),
        })
        .collect()
}

pub(super) async fn recent(AxState(state): AxState<Arc<State>>) -> Response {
    axum::Json(recent_rows(&state)).into_response()
}

/// The query of an explain request (`/?client=&name=&at=` and
/// `/api/v1/explain`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ExplainQuery {
    pub(super) client: Option<String>,
    pub(super) name: Option<String>,
    pub(super) at: Option<String>,
}

/// Why an explain request was refused (400).
#[derive(Debug, thiserror::Error)]
pub enum ExplainQueryError {
    /// Not a query string this endpoint reads.
    #[error(transparent)]
    Query(#[from] QueryRejection),
    /// A required field is missing.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// `client` is not an address.
    #[error("`client`: `{0}` is not an IPv4 or IPv6 address")]
    Client(String),
    /// `at` is not an RFC 3339 instant.
    #[error("`at`: `{0}` is not an RFC 3339 instant with an offset")]
    At(String),
    /// The name cannot be decided.
    #[error(transparent)]
    Name(#[from] crate::explain::ExplainError),
}

/// The explanation and its text, as `cutoff explain` gives them, for the
/// fields of `q` (the current config, `now` unless `at` is given).
pub(super) fn explain_query(
    state: &State,
    q: &ExplainQuery,
    now: Timestamp,
) -> Result<(crate::explain::Explanation, String), ExplainQueryError> {
    let client = q
        .client
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(ExplainQueryError::Missing("client"))?;
    let client: IpAddr = client
        .trim()
        .parse()
        .map_err(|_| ExplainQueryError::Client(client.to_owned()))?;
    let name = q
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(ExplainQueryError::Missing("name"))?;
    let at = match q.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => now,
        Some(a) => a.parse().map_err(|_| ExplainQueryError::At(a.to_owned()))?,
    };
    let runtime = state.current.load();
    let snapshot = &runtime.policy;
    let e = crate::explain::explain(snapshot, client, name.trim(), at, &[])?;
    let text = crate::explain::text(snapshot, &e);
    Ok((e, text))
}

pub(super) async fn explain(AxState(state): AxState<Arc<State>>, uri: Uri) -> Response {
    let result = Query::<ExplainQuery>::try_from_uri(&uri)
        .map_err(ExplainQueryError::from)
        .and_then(|Query(q)| explain_query(&state, &q, Timestamp::now()));
    match result {
        Ok((e, _)) => axum::Json(e).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
