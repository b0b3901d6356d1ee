//! `GET /api/v1/status`: what an operator looks at first, without a shell: the saga (lag, in
//! flight, every parked event and participant with its code, reason and fix, the last Moodle
//! error), Moodle's health (the last preflight), and how far the read models are.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let head = store.head().await?;
    let views = views::checkpoint(store).await.map_err(ApiError::internal)?;
    let saga = match state.saga() {
        Some(saga) => saga.status().await.map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "saga_unavailable",
                e,
            )
        })?,
        None => Value::Null,
    };
    let moodle = &state.config().moodle;
    let health = match state.health().last() {
        Some(s) => serde_json::to_value(s).map_err(ApiError::internal)?,
        None => Value::Null,
    };
    let webhooks = match webhooks::status(store).await {
        Ok(s) => serde_json::to_value(s).map_err(ApiError::internal)?,
        Err(e) => {
            tracing::warn!(error = %e, "webhook status not read");
            Value::Null
        }
    };
    Ok(Json(json!({
        "head": head,
        "webhooks": webhooks,
        "views": { "checkpoint": views, "lag": (head - views).max(0) },
        "saga": saga,
        "moodle": {
            "enabled": moodle.enabled,
            "health": health,
        },
    })))
}
