//! `PATCH /api/v1/events/{id}/participants/{participant_id}`: correct a participant's data or
//! change their role with a JSON merge patch (RFC 7396), keeping the same person (and, on the
//! Moodle side, the same linked account).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use domain::event::{EventCommand, Status, VleEvent};
use domain::participant::ParticipantPatch;

use crate::body;
use crate::commands::{self, CommandCtx};
use crate::events::{on_event, view_or_404};
use crate::{identity, ApiError, AppState};

/// The fields a participant always has: `null` cannot clear them. RFC 7396 reads `null` as
/// "remove"; keeping the old value instead would answer 202 to a request that did not do what it
/// said, so it is refused.
const REQUIRED: [&str; 4] = ["role", "first_name", "last_name", "email"];

/// The patch of a request body: `malformed_json` / `invalid_request` (400) as for every body,
/// an unknown field (`id` included: a participant's id never changes) is `invalid_request`, and
/// `null` on a required field is 422 `invalid_field`.
fn parse_patch(raw: &[u8]) -> Result<ParticipantPatch, ApiError> {
    let patch: ParticipantPatch = body::parse(raw)?;
    let fields: Map<String, Value> = body::parse(raw)?;
    if let Some(field) = REQUIRED
        .iter()
        .find(|f| fields.get(**f).is_some_and(Value::is_null))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("participant.{field} cannot be cleared (null); send a value or leave it out"),
        )
        .with_details(json!({
            "field": format!("participant.{field}"),
            "reason": "cannot be null",
        })));
    }
    Ok(patch)
}

pub(crate) async fn change_participant(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path((raw_id, participant_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let prepared = (|| {
        let id = body::event_id(&raw_id)?;
        body::plain_id("participant_id", &participant_id)?;
        let raw = body::bytes(raw)?;
        // application/json and application/merge-patch+json (any `application/*+json`).
        body::require_json(&headers)?;
        let patch = parse_patch(&raw)?;
        Ok::<_, ApiError>((raw, patch, id))
    })();
    let (raw, patch, id) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("change_participant", "rejected");
            return e.into_response();
        }
    };
    commands::run(
        state,
        ctx,
        "change_participant",
        raw,
        move |state, meta| async move {
            check_identity(&state, &id, &participant_id, &patch).await?;
            let appended = commands::execute::<VleEvent>(&state, &id, &meta, || {
                EventCommand::ChangeParticipant {
                    participant_id: participant_id.clone(),
                    patch: patch.clone(),
                }
            })
            .await
            .map_err(on_event(&id))?;
            let view = view_or_404(&state, &id).await?;
            let participant = view
                .participants
                .iter()
                .find(|p| p.id == participant_id)
                .map(|p| json!(p))
                .unwrap_or(Value::Null);
            Ok((
                StatusCode::ACCEPTED,
                json!({
                    "event": view,
                    "participant": participant,
                    "positions": appended.positions,
                }),
            ))
        },
    )
    .await
}

/// The identity rule on the participant the patch would make. Checked against the event as
/// loaded just before the command runs: a concurrent change in between cannot slip a participant
/// without the match value past it, because that change was itself checked (it either kept the
/// value or was refused) and this patch, when it does not touch the field, keeps whatever value
/// is there. Anything the domain refuses (unknown event or participant, ended event, bad field)
/// is left to the domain, so its codes win.
async fn check_identity(
    state: &AppState,
    id: &str,
    participant_id: &str,
    patch: &ParticipantPatch,
) -> Result<(), ApiError> {
    let settings = &state.config().moodle;
    if !settings.enabled {
        // The rule cannot refuse anything: spare the load.
        return Ok(());
    }
    let Some((event, _)) = state.store().load::<VleEvent>(id).await? else {
        return Ok(());
    };
    if event.status != Status::Deployed {
        return Ok(());
    }
    let after = event
        .participant(participant_id)
        .and_then(|before| patch.clone().apply(before).ok());
    identity::refuse_unmatchable(settings, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_parse_strictly() {
        let p = parse_patch(br#"{"username": null, "role": "instructor"}"#).unwrap();
        assert_eq!(p.username, Some(None));
        assert_eq!(p.role.as_deref(), Some("instructor"));
        assert_eq!(parse_patch(b"{}").unwrap(), ParticipantPatch::default());
        assert_eq!(
            parse_patch(br#"{"id": "p9"}"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(
            parse_patch(br#"["role"]"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(parse_patch(b"{").unwrap_err().code, "malformed_json");
        for field in REQUIRED {
            let e = parse_patch(format!(r#"{{"{field}": null}}"#).as_bytes()).unwrap_err();
            assert_eq!(e.code, "invalid_field", "{field}");
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(e.details["field"], format!("participant.{field}"));
        }
    }
}
