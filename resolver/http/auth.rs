//! Bearer tokens on the admin endpoint (docs/api.md, "Tokens"): every
//! write needs `Authorization: Bearer` with the token of `http.token_file`;
//! with `http.read_token_file` set, every read but `/healthz` and
//! `/readyz` needs that token (or the write token) too. Tokens are compared
//! in constant time (`config::Token::verify`); nothing is ever kept in a
//! cookie, so there is nothing for a cross-site request to ride on.
//! Beside the query flow.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Token;
use crate::runtime::State;

/// What a request's `Authorization` header proves.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No token is configured for this kind of request.
    Off,
    /// No bearer token, or the wrong one.
    Unauthorized,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = |m: &str| axum::Json(serde_json::json!({ "error": m }));
        match self {
            Self::Off => (
                StatusCode::FORBIDDEN,
                body("writes are off: the config names no `http.token_file` (docs/api.md)"),
            )
                .into_response(),
            Self::Unauthorized => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    body("a valid bearer token is required: `Authorization: Bearer TOKEN`"),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
        }
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

fn proves(tokens: &[Option<&Token>], headers: &HeaderMap) -> bool {
    let Some(presented) = bearer(headers) else {
        return false;
    };
    // Every configured token is checked, so the time taken does not say
    // which one matched.
    tokens
        .iter()
        .flatten()
        .fold(false, |ok, t| t.verify(presented) | ok)
}

/// Whether the request may write (the write token only).
pub(super) fn may_write(state: &State, headers: &HeaderMap) -> Result<(), Refusal> {
    let tokens = state.tokens.load();
    match &tokens.write {
        None => Err(Refusal::Off),
        Some(t) if proves(&[Some(t)], headers) => Ok(()),
        Some(_) => Err(Refusal::Unauthorized),
    }
}

/// The read side's gate: open without `http.read_token_file`; else the
/// read or the write token. Health checks stay open (orchestrators probe
/// them without credentials); writes check their own token.
pub(super) async fn read_gate(
    AxState(state): AxState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // The writes check the write token themselves (and only they may pass
    // here without the read token: a HEAD of a read route may not).
    let write = matches!(
        *request.method(),
        axum::http::Method::POST | axum::http::Method::DELETE
    ) && matches!(path, "/api/v1/reload" | "/api/v1/allow");
    let open = matches!(path, "/healthz" | "/readyz") || write;
    if !open {
        let tokens = state.tokens.load();
        if let Some(read) = &tokens.read
            && !proves(&[Some(read), tokens.write.as_ref()], request.headers())
        {
            return Refusal::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        assert_eq!(bearer(&headers("Bearer abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers("bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bear")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn the_right_token_of_several_proves_the_request() {
        let (a, b) = (
            Token::new("aaaaaaaaaaaaaaaa"),
            Token::new("bbbbbbbbbbbbbbbb"),
        );
        assert!(proves(
            &[Some(&a), Some(&b)],
            &headers("Bearer bbbbbbbbbbbbbbbb")
        ));
        assert!(!proves(
            &[Some(&a), None],
            &headers("Bearer bbbbbbbbbbbbbbbb")
        ));
        assert!(!proves(&[Some(&a)], &HeaderMap::new()));
    }
}
