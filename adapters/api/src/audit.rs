//! The audit log: pages of the global log in position order, and the integrity check.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::events::history_entry;
use crate::{ApiError, AppState};

/// Default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1000;

fn timestamp(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_request(format!("{name} must be an RFC 3339 timestamp"))
                .with_details(json!({ "parameter": name, "value": raw }))
        })
}

fn number(name: &str, raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| {
        ApiError::invalid_request(format!("{name} must be a non-negative integer"))
            .with_details(json!({ "parameter": name, "value": raw }))
    })
}

/// Parses the query of `GET /api/v1/audit` (unknown parameters are refused, to catch typos).
pub(crate) fn log_query(params: &[(String, String)]) -> Result<store::LogQuery, ApiError> {
    let mut q = store::LogQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "after" => {
                q.after = i64::try_from(number(name, value)?).map_err(|_| {
                    ApiError::invalid_request("after is too large")
                        .with_details(json!({ "parameter": "after", "value": value }))
                })?
            }
            "limit" => {
                let n = number(name, value)?;
                if n == 0 || n > MAX_LIMIT as u64 {
                    return Err(ApiError::invalid_request(format!(
                        "limit must be between 1 and {MAX_LIMIT}"
                    ))
                    .with_details(json!({ "parameter": "limit", "value": value })));
                }
                q.limit = n as usize;
            }
            "stream" => {
                crate::body::plain_id("stream", value)?;
                q.stream = Some(value.clone())
            }
            "aggregate_type" => {
                crate::body::plain_id("aggregate_type", value)?;
                q.aggregate_type = Some(value.clone())
            }
            "type" => {
                crate::body::plain_id("type", value)?;
                q.event_type = Some(value.clone())
            }
            "from" => q.from = Some(timestamp(name, value)?),
            "to" => q.to = Some(timestamp(name, value)?),
            other => return Err(ApiError::invalid_request(format!(
                "unknown query parameter {other:?}"
            ))
            .with_details(json!({
                "parameter": other,
                "allowed": ["after", "limit", "stream", "aggregate_type", "type", "from", "to"]
            }))),
        }
    }
    Ok(q)
}

pub(crate) async fn page(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let q = log_query(&params)?;
    let limit = q.limit;
    let events = state.store().read_page(&q).await?;
    let next = if events.len() >= limit {
        events.last().map(|e| e.position)
    } else {
        None
    };
    Ok(Json(json!({
        "events": events.into_iter().map(history_entry).collect::<Vec<_>>(),
        "next": next,
    })))
}

pub(crate) async fn verify(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let report = state.store().verify().await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}
