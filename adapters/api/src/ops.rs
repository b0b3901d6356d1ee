//! Capabilities, health, readiness, metrics, the OpenAPI document and the JSON 404.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

pub(crate) async fn capabilities(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "moodle": { "enabled": state.config().moodle.enabled },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(_) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store ping failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the event store is unavailable",
            )
            .into_response()
        }
    }
}

pub(crate) async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI_JSON,
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}
