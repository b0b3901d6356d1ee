//! Bearer tokens: a writer token may do everything, an auditor token may only read.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// Who sent a request; recorded as the `actor` of what it appends (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The writer token.
    Writer,
    /// The auditor token (read only).
    Auditor,
    /// No token configured: loopback only.
    Anonymous,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Writer => "writer",
            Actor::Auditor => "auditor",
            Actor::Anonymous => "anonymous",
        }
    }
}

/// Equality of two byte strings in time independent of where they differ (and of their
/// lengths: the digests are compared).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware of every `/api/v1` route but the OpenAPI document.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let config = state.config();
    let actor = if !config.auth_enabled() {
        Actor::Anonymous
    } else {
        let Some(token) = bearer(&request) else {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing bearer token: send Authorization: Bearer <token>",
            )
            .into_response();
        };
        // Check both, always, so timing does not tell which one matched.
        let writer = config
            .writer_token
            .as_ref()
            .is_some_and(|t| t.matches(token));
        let auditor = config
            .audit_token
            .as_ref()
            .is_some_and(|t| t.matches(token));
        if writer {
            Actor::Writer
        } else if auditor {
            Actor::Auditor
        } else {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid bearer token",
            )
            .into_response();
        }
    };
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if actor == Actor::Auditor && !read {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the auditor token may only read (GET)",
        )
        .into_response();
    }
    request.extensions_mut().insert(actor);
    next.run(request).await
}
