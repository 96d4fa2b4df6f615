//! `GET /rpz/NAME.rpz`: the zone file of an RPZ zone (`rpz.zones`), the
//! same zone a secondary transfers over DNS, for resolvers that fetch a
//! zone over HTTP (Unbound's `rpz: url:`). Read-only; beside the query flow.

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::reload::State;

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
