//! `GET /api/v1/events` (paged, filtered: what an operator scans) and
//! `GET /api/v1/participants?email=|username=|idnumber=` (which events a person is in, with which
//! Moodle account and enrolment). Both answer from the read models (auditor tokens too).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use domain::DomainError;
use views::list::{EventFilter, PersonKey, MAX_LIMIT};

use crate::moodle_routes::{params, Params};
use crate::{ApiError, AppState};

const MOODLE_STATES: &[&str] = &["disabled", "not_linked", "pending", "in_sync", "failed"];
const STATUSES: &[&str] = &["deployed", "ended", "deleted"];

/// `value` must be one of `allowed` (422 `invalid_field` naming the parameter otherwise).
fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(DomainError::invalid(field, format!("must be one of {}", allowed.join(", "))).into())
    }
}

fn number(field: &str, raw: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            DomainError::invalid(
                field,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
            .into()
        })
}

/// `GET /api/v1/events?moodle_state=&environment_id=&status=&updated_since=&after=&limit=`:
/// `{"events": [...], "next": <cursor or null>}`; pass `next` as `after` for the next page.
pub(crate) async fn list_events(
    State(state): State<AppState>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let p = params(
        query,
        &[
            "moodle_state",
            "environment_id",
            "status",
            "updated_since",
            "after",
            "limit",
        ],
    )?;
    let filter = EventFilter {
        moodle_state: p
            .get("moodle_state")
            .map(|v| one_of("moodle_state", v, MOODLE_STATES))
            .transpose()?,
        environment_id: p.get("environment_id").cloned(),
        status: p
            .get("status")
            .map(|v| one_of("status", v, STATUSES))
            .transpose()?,
        updated_since: p
            .get("updated_since")
            .map(|t| {
                crate::event_change::unix_time("updated_since", t).and_then(|secs| {
                    chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| {
                        DomainError::invalid("updated_since", "is out of range").into()
                    })
                })
            })
            .transpose()?,
    };
    let after = p
        .get("after")
        .map(|a| number("after", a, 0..=i64::MAX))
        .transpose()?
        .unwrap_or(0);
    let limit = p
        .get("limit")
        .map(|l| number("limit", l, 1..=MAX_LIMIT as i64))
        .transpose()?
        .unwrap_or(100) as usize;
    let (events, next) = views::list::events(state.store(), &filter, after, limit)
        .await
        .map_err(crate::events::views_error)?;
    Ok(Json(json!({ "events": events, "next": next })))
}

/// `GET /api/v1/participants?email=X` (or `username=`, `idnumber=`; exactly one).
pub(crate) async fn find_participants(
    State(state): State<AppState>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let p = params(query, &["email", "username", "idnumber"])?;
    let given: Vec<(PersonKey, &str, &String)> = [
        (PersonKey::Email, "email"),
        (PersonKey::Username, "username"),
        (PersonKey::Idnumber, "idnumber"),
    ]
    .into_iter()
    .filter_map(|(k, name)| p.get(name).map(|v| (k, name, v)))
    .collect();
    let [(key, name, value)] = given.as_slice() else {
        return Err(ApiError::invalid_request(
            "give exactly one of email, username, idnumber",
        ));
    };
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 255 {
        return Err(DomainError::invalid(name, "must be 1 to 255 characters").into());
    }
    let found = views::list::people(state.store(), *key, value)
        .await
        .map_err(crate::events::views_error)?;
    Ok(Json(json!({ "participants": found })))
}
