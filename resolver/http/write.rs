//! The write side of the admin endpoint (docs/api.md): temporary allows
//! (`GET`, `POST`, `DELETE /api/v1/allow`) and `POST /api/v1/reload`.
//! Every write needs the bearer token of `http.token_file` (`auth`); the
//! answers are JSON, errors as `{"error": "…"}`. Beside the query flow: an
//! allow reaches queries through `State::allows`, a reload through the
//! runtime swap.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::auth::may_write;
use crate::allows::{Allow, AllowError};
use crate::runtime::State;

/// The body of `POST /api/v1/allow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRequest {
    /// The name to open (and every name below it).
    pub name: String,
    /// One network; absent: every network that permits overrides.
    pub network: Option<String>,
    /// How long: `30m`, `2h`, `1d` (at most `http.max_allow`).
    #[serde(rename = "for")]
    pub span: String,
}

/// The answer of `POST /api/v1/reload`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadResult {
    /// Whether the new config is in force.
    pub ok: bool,
    /// The config version in force afterwards.
    pub version: String,
    /// Every problem, when it failed (the running config stays).
    pub errors: Vec<String>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

fn refused(e: &AllowError) -> Response {
    let status = match e {
        AllowError::Forbidden(_) => StatusCode::FORBIDDEN,
        AllowError::Full => StatusCode::CONFLICT,
        AllowError::Io { .. } | AllowError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e)
}

fn gauge(state: &State) {
    let n = state.allows.list(Timestamp::now()).len();
    state.metrics.temporary_allows.set(n as f64);
}

pub(super) async fn list(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.allows.list(Timestamp::now())).into_response()
}

pub(super) async fn add(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Result<Json<AllowRequest>, JsonRejection>,
) -> Response {
    if let Err(r) = may_write(&state, &headers) {
        return r.into_response();
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Some(span) = crate::config::parse_long_duration(&req.span) else {
        return refused(&AllowError::NotADuration(req.span));
    };
    let runtime = state.current.load();
    let c = &runtime.policy.config;
    let network = req.network.as_deref().filter(|n| !n.is_empty());
    let result = state
        .allows
        .add(c, &req.name, network, span, Timestamp::now());
    gauge(&state);
    match result {
        Ok(a) => {
            tracing::warn!(name = %a.name, network = a.network.as_deref().unwrap_or("*"), until = %a.until, "temporary allow added");
            (StatusCode::CREATED, Json::<Allow>(a)).into_response()
        }
        Err(e) => refused(&e),
    }
}

#[derive(Deserialize)]
struct Remove {
    name: Option<String>,
    network: Option<String>,
}

pub(super) async fn remove(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(r) = may_write(&state, &headers) {
        return r.into_response();
    }
    let q = match Query::<Remove>::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Some(name) = q.name.filter(|n| !n.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "`name` is required");
    };
    let network = q.network.as_deref().filter(|n| !n.is_empty());
    let result = state.allows.remove(&name, network, Timestamp::now());
    gauge(&state);
    match result {
        Ok(0) => error(
            StatusCode::NOT_FOUND,
            format!("no temporary allow of `{name}` is in force"),
        ),
        Ok(n) => {
            tracing::warn!(%name, network = network.unwrap_or("*"), "temporary allow removed");
            Json(serde_json::json!({ "removed": n })).into_response()
        }
        Err(e) => refused(&e),
    }
}

pub(super) async fn reload(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(r) = may_write(&state, &headers) {
        return r.into_response();
    }
    let work = {
        let state = state.clone();
        move || state.reload()
    };
    let outcome = crate::reload::bounded(crate::reload::RELOAD_TIMEOUT, work).await;
    let errors = match outcome {
        Some(Ok(version)) => {
            tracing::info!(%version, "reloaded (POST /api/v1/reload)");
            Vec::new()
        }
        Some(Err(crate::reload::BuildError::Config(crate::config::ConfigError::Invalid {
            origin,
            problems,
            ..
        }))) => problems.iter().map(|p| format!("{origin}: {p}")).collect(),
        Some(Err(e)) => vec![e.to_string()],
        None => {
            state.metrics.reload_failure.increment(1);
            vec![format!(
                "the reload did not finish within {}s; the running config stays",
                crate::reload::RELOAD_TIMEOUT.as_secs()
            )]
        }
    };
    for e in &errors {
        tracing::error!("reload failed, keeping the running config: {e}");
    }
    let result = ReloadResult {
        ok: errors.is_empty(),
        version: state.current.load().policy.config.version.clone(),
        errors,
    };
    let status = if result.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(result)).into_response()
}
