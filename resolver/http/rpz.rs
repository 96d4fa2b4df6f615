//! `GET /rpz/NAME.rpz`: the zone file of an RPZ zone (`rpz.zones`), the
//! same zone a secondary transfers over DNS, for resolvers that fetch a
//! zone over HTTP (Unbound's `rpz: url:`); and `GET /export/NAME.txt?format=F`:
//! the same zone's content in another `cutoff export` format, for blockers
//! that subscribe to a list URL (AdGuard Home, Pi-hole). Read-only; beside
//! the query flow.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::export::{self, Format};
use crate::runtime::State;

/// The zone file, `text/dns` (RFC 4027), or 404 naming the zones served.
pub(super) async fn zone(
    AxState(state): AxState<Arc<State>>,
    Path(file): Path<String>,
) -> Response {
    match state.rpz.zone_file(&file) {
        Some(z) => (
            [
                (header::CONTENT_TYPE, "text/dns; charset=utf-8".to_owned()),
                (header::ETAG, format!("\"{}\"", z.serial())),
            ],
            z.text(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "no RPZ zone `{file}`; served: {}\n",
                state.rpz.names().join(", ")
            ),
        )
            .into_response(),
    }
}

/// The query of `/export/NAME.txt`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ExportQuery {
    /// A `cutoff export --format` word (default `adblock`).
    format: Option<String>,
}

/// The zone's content in `format`, `text/plain`; 400 for an unknown
/// format, 404 for an unknown zone.
pub(super) async fn list(
    AxState(state): AxState<Arc<State>>,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let word = q.format.as_deref().unwrap_or("adblock");
    let Some(format) = Format::ALL.into_iter().find(|f| f.as_str() == word) else {
        let words: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        return (
            StatusCode::BAD_REQUEST,
            format!("no format `{word}`; formats: {}\n", words.join(", ")),
        )
            .into_response();
    };
    let name = file.strip_suffix(".txt").unwrap_or(&file);
    match state.rpz.zone(name) {
        Some(z) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            export::formats_render(&z.export, format),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "no RPZ zone `{name}`; served: {}\n",
                state.rpz.names().join(", ")
            ),
        )
            .into_response(),
    }
}
