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

/// `POST /api/v1/webhooks/redeliver` `{}` | `{"event_id": E}` | `{"message_id": M}`: sends dead
/// webhook messages again with their ids, as `openvle-moodle webhooks redeliver`. Writers only.
pub(crate) async fn redeliver_webhooks(
    State(state): State<AppState>,
    ctx: crate::commands::CommandCtx,
    headers: axum::http::HeaderMap,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        event_id: Option<String>,
        #[serde(default)]
        message_id: Option<String>,
    }
    let prepared = (|| {
        let raw = crate::body::bytes(raw)?;
        let body: Body = if raw.is_empty() {
            Body::default()
        } else {
            crate::body::require_json(&headers)?;
            crate::body::parse(&raw)?
        };
        let event = body
            .event_id
            .as_deref()
            .map(crate::body::event_id)
            .transpose()?;
        if let Some(m) = &body.message_id {
            crate::body::plain_id("message_id", m)?;
        }
        Ok::<_, ApiError>((raw, event, body.message_id))
    })();
    let (raw, event, message) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("webhooks_redeliver", "rejected");
            return e.into_response();
        }
    };
    crate::commands::run(
        state,
        ctx,
        "webhooks_redeliver",
        raw,
        move |state, _meta| async move {
            let queued = webhooks::redeliver(state.store(), event.as_deref(), message.as_deref())
                .await
                .map_err(ApiError::internal)?;
            Ok((
                axum::http::StatusCode::ACCEPTED,
                json!({ "redelivered": queued }),
            ))
        },
    )
    .await
}
