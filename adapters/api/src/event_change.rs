//! An event's own data beside its participants: its dates, given at deploy as RFC 3339 times,
//! and `PATCH /api/v1/events/{id}`, a JSON merge patch (RFC 7396) of its name and dates that
//! its Moodle course follows.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Map, Value};

use domain::event::{EventCommand, EventPatch, Schedule, VleEvent};
use domain::DomainError;

use crate::body;
use crate::commands::{self, CommandCtx};
use crate::events::{accepted, on_event};
use crate::{ApiError, AppState};

/// An RFC 3339 time (`2027-03-01T09:00:00+01:00`) as unix seconds (a fraction is dropped:
/// Moodle keeps seconds). Anything else is 422 `invalid_field` naming the field.
pub(crate) fn unix_time(field: &str, raw: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.timestamp())
        .map_err(|_| {
            DomainError::invalid(
                field,
                format!("{raw:?} is not an RFC 3339 date-time such as 2027-03-01T09:00:00Z"),
            )
            .into()
        })
}

/// The dates of a deploy body.
pub(crate) fn schedule(
    starts_at: Option<&str>,
    ends_at: Option<&str>,
) -> Result<Schedule, ApiError> {
    Ok(Schedule {
        starts_at: starts_at.map(|t| unix_time("starts_at", t)).transpose()?,
        ends_at: ends_at.map(|t| unix_time("ends_at", t)).transpose()?,
    })
}

/// The body of `PATCH /api/v1/events/{id}`: every field optional; `null` clears a date.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    /// Another template for a course not made yet (a deploy parked on a wrong template).
    #[serde(default)]
    moodle_template_course_id: Option<i64>,
}

/// A merge patch: an absent field is kept, a present one replaces, `null` clears a date; the
/// name cannot be cleared (422 `invalid_field`), any other field is 400 `invalid_request`.
fn parse_patch(raw: &[u8]) -> Result<EventPatch, ApiError> {
    let fields: Map<String, Value> = body::parse(raw)?;
    let body: PatchBody = body::parse(raw)?;
    for field in ["name", "moodle_template_course_id"] {
        if fields.get(field).is_some_and(Value::is_null) {
            return Err(DomainError::invalid(
                field,
                "cannot be cleared (null); send a value or leave it out",
            )
            .into());
        }
    }
    let date = |field: &str, value: &Option<String>| -> Result<Option<Option<i64>>, ApiError> {
        match (fields.get(field), value) {
            (None, _) => Ok(None),
            (Some(_), None) => Ok(Some(None)),
            (Some(_), Some(t)) => Ok(Some(Some(unix_time(field, t)?))),
        }
    };
    Ok(EventPatch {
        starts_at: date("starts_at", &body.starts_at)?,
        ends_at: date("ends_at", &body.ends_at)?,
        name: body.name,
        template_course_id: body.moodle_template_course_id,
    })
}

/// `PATCH /api/v1/events/{id}`: 202 with the event's view; a patch that changes nothing appends
/// nothing (`positions` empty).
pub(crate) async fn change_event(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let prepared = (|| {
        let id = body::event_id(&raw_id)?;
        let raw = body::bytes(raw)?;
        body::require_json(&headers)?;
        let patch = parse_patch(&raw)?;
        Ok::<_, ApiError>((raw, patch, id))
    })();
    let (raw, patch, id) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("change_event", "rejected");
            return e.into_response();
        }
    };
    commands::run(
        state,
        ctx,
        "change_event",
        raw,
        move |state, meta| async move {
            if let Some(template) = patch.template_course_id {
                check_template(&state, &id, template).await?;
            }
            let appended =
                commands::execute::<VleEvent>(&state, &id, &meta, || EventCommand::Change {
                    patch: patch.clone(),
                })
                .await
                .map_err(on_event(&id))?;
            accepted(&state, &id, appended).await
        },
    )
    .await
}

/// A template change reaches only a course not made yet: 409 `course_already_made` when the
/// event has its course (its content is Moodle's and the teachers' now), 422
/// `unknown_template_course` when Moodle has no such course (nothing is appended either way).
async fn check_template(state: &AppState, id: &str, template: i64) -> Result<(), ApiError> {
    let view = crate::events::view_or_404(state, id).await?;
    if let Some(course) = view.moodle.course_id {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "course_already_made",
            format!(
                "event {id}'s Moodle course {course} exists already: a template change reaches \
                 only a course not made yet"
            ),
        )
        .with_details(serde_json::json!({ "course_id": course })));
    }
    if let Some(client) = state.moodle() {
        let target = moodle::Target::TemplateCourse(template);
        crate::environments::require_targets(client, &[("moodle_template_course_id", target)])
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_patches_parse_strictly() {
        assert_eq!(
            unix_time("starts_at", "2027-03-01T09:00:00Z").unwrap(),
            1_803_891_600
        );
        assert_eq!(
            unix_time("starts_at", "2027-03-01T10:00:00.750+01:00").unwrap(),
            1_803_891_600
        );
        let e = unix_time("ends_at", "2027-03-01").unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert_eq!(e.details["field"], "ends_at");

        let p = parse_patch(br#"{"name": "B", "ends_at": null}"#).unwrap();
        assert_eq!(p.name.as_deref(), Some("B"));
        assert_eq!(p.starts_at, None);
        assert_eq!(p.ends_at, Some(None));
        let p = parse_patch(br#"{"starts_at": "2027-03-01T09:00:00Z"}"#).unwrap();
        assert_eq!(p.starts_at, Some(Some(1_803_891_600)));
        assert_eq!(parse_patch(b"{}").unwrap(), EventPatch::default());
        assert_eq!(
            parse_patch(br#"{"name": null}"#).unwrap_err().code,
            "invalid_field"
        );
        assert_eq!(
            parse_patch(br#"{"id": "x"}"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(
            parse_patch(br#"{"starts_at": 5}"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(parse_patch(b"{").unwrap_err().code, "malformed_json");
    }
}
