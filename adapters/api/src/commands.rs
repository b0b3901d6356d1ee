//! Running a command: idempotency keys, metadata, retry on a version clash, the 202 answer.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cqrs_es::Aggregate;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use domain::DomainError;
use store::{CommandError, CommandMeta, IdempotencyState};

use crate::{Actor, ApiError, AppState};

/// Header that marks a replayed answer.
pub(crate) const REPLAYED: &str = "idempotent-replayed";

/// What a command request carries besides its body.
#[derive(Debug, Clone)]
pub(crate) struct CommandCtx {
    pub actor: Actor,
    pub key: Option<String>,
    pub correlation_id: Option<String>,
    pub method: Method,
    pub path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for CommandCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let actor = parts
            .extensions
            .get::<Actor>()
            .copied()
            .unwrap_or(Actor::Anonymous);
        let key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(v) => {
                let key = v.to_str().ok().map(str::trim).unwrap_or("");
                if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    ));
                }
                Some(key.to_string())
            }
        };
        let correlation_id = parts
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 255 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_string);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| parts.uri.path().to_string());
        Ok(CommandCtx {
            actor,
            key,
            correlation_id,
            method: parts.method.clone(),
            path,
        })
    }
}

/// The fingerprint an idempotency key is bound to: method, path and body.
pub(crate) fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn outcome_of(e: &ApiError) -> &'static str {
    if e.code == "concurrent_modification" {
        "conflict"
    } else if e.status.is_server_error() {
        "error"
    } else {
        "rejected"
    }
}

/// Runs a command under its idempotency key (if any). `work` gets the command metadata and
/// returns the success answer. The work runs in its own task, so a client that hangs up does
/// not cut a command in half or leave its key in flight.
pub(crate) async fn run<F, Fut>(
    state: AppState,
    ctx: CommandCtx,
    name: &'static str,
    body: axum::body::Bytes,
    work: F,
) -> Response
where
    F: FnOnce(AppState, CommandMeta) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>> + Send + 'static,
{
    let task = tokio::spawn(run_inner(state, ctx, name, body, work));
    match task.await {
        Ok(response) => response,
        Err(e) => {
            crate::metrics::command(name, "error");
            ApiError::internal(format_args!("command {name}: task failed: {e}")).into_response()
        }
    }
}

async fn run_inner<F, Fut>(
    state: AppState,
    ctx: CommandCtx,
    name: &'static str,
    body: axum::body::Bytes,
    work: F,
) -> Response
where
    F: FnOnce(AppState, CommandMeta) -> Fut,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let actor = ctx.actor.as_str();
    if let Some(key) = &ctx.key {
        let hash = request_hash(&ctx.method, &ctx.path, &body);
        match state.store().idempotency_begin(key, actor, &hash).await {
            Err(e) => {
                let e = ApiError::from(e);
                crate::metrics::command(name, outcome_of(&e));
                return e.into_response();
            }
            Ok(IdempotencyState::New) => {}
            Ok(IdempotencyState::Replay { status, body }) => {
                crate::metrics::command(name, "replayed");
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
                let mut response = json_response(status, body.into());
                response
                    .headers_mut()
                    .insert(REPLAYED, HeaderValue::from_static("true"));
                return response;
            }
            Ok(IdempotencyState::Mismatch) => {
                crate::metrics::command(name, "rejected");
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for another request",
                )
                .with_details(json!({ "idempotency_key": key }))
                .into_response();
            }
            Ok(IdempotencyState::InFlight) => {
                crate::metrics::command(name, "rejected");
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_flight",
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                )
                .with_details(json!({ "idempotency_key": key }))
                .into_response();
            }
        }
    }

    let mut meta = CommandMeta::new(actor);
    meta.idempotency_key = ctx.key.clone();
    if let Some(correlation) = &ctx.correlation_id {
        // A caller's correlation id: a UUID as is, anything else mapped to a stable UUID.
        meta.correlation_id = uuid::Uuid::parse_str(correlation).unwrap_or_else(|_| {
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, correlation.as_bytes())
        });
    }

    match work(state.clone(), meta).await {
        Ok((status, value)) => {
            crate::metrics::command(name, "accepted");
            let text = serde_json::to_string(&value).unwrap_or_default();
            if let Some(key) = &ctx.key {
                if let Err(e) = state
                    .store()
                    .idempotency_complete(key, actor, status.as_u16(), &text)
                    .await
                {
                    tracing::warn!(error = %e, command = name, "could not remember the answer of an idempotency key");
                }
            }
            json_response(status, text.into_bytes())
        }
        Err(e) => {
            crate::metrics::command(name, outcome_of(&e));
            // Only successes are remembered: an error releases the key, so the same request can
            // be sent again once the cause is fixed (it appended nothing).
            if let Some(key) = &ctx.key {
                if let Err(abort) = state.store().idempotency_abort(key, actor).await {
                    tracing::warn!(error = %abort, command = name, "could not release an idempotency key");
                }
            }
            e.into_response()
        }
    }
}

/// Executes a command. The store re-runs it against fresh state after a version clash (the
/// command is validated again each time, so nothing is lost and nothing is applied twice); a
/// clash that outlasts its retries is `409 concurrent_modification`.
pub(crate) async fn execute<A>(
    state: &AppState,
    aggregate_id: &str,
    meta: &CommandMeta,
    command: impl Fn() -> A::Command + Send + Sync,
) -> Result<store::Appended, ApiError>
where
    A: Aggregate<Error = DomainError, Services = ()> + 'static,
    A::Command: Send + Sync,
{
    match state
        .store()
        .execute_fn::<A>(aggregate_id, meta, |_attempt| command())
        .await
    {
        Ok(appended) => Ok(appended),
        Err(CommandError::Rejected(e)) => Err(e.into()),
        Err(CommandError::Store(e)) => Err(e.into()),
        Err(CommandError::Conflict) => Err(ApiError::concurrent_modification()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_binds_method_path_and_body() {
        let a = request_hash(&Method::POST, "/api/v1/events", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/api/v1/events", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/events", b"{ }"));
        assert_ne!(a, request_hash(&Method::PUT, "/api/v1/events", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/events/x", b"{}"));
    }
}
