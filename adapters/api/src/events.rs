//! OpenVLE events: deploy, participants, end, delete, view, history, Moodle retry (a
//! participant's PATCH is in `participants`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use domain::environment::Environment;
use domain::event::{DeployContext, EventCommand, VleEvent};
use domain::moodle_sync::{MoodleSync, MoodleSyncCommand};
use domain::participant::ParticipantInput;
use projections::view::EventView;

use crate::body;
use crate::commands::{self, CommandCtx};
use crate::identity;
use crate::{ApiError, AppState};

/// `POST /api/v1/events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    id: String,
    environment_id: String,
    name: String,
    #[serde(default)]
    participants: Vec<ParticipantInput>,
    /// RFC 3339; the course's start and end dates.
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
}

/// The view of an OpenVLE event as of now (None: never deployed): the read model's stored fold
/// plus the event's events after it, rendered with this server's settings. As fresh as the log
/// (a 202 shows its own command) without folding the whole history on every request; without
/// a stored fold (projector not started) the whole history is folded, as before.
pub(crate) async fn load_view(state: &AppState, id: &str) -> Result<Option<EventView>, ApiError> {
    let fold = views::current_fold(state.store(), id)
        .await
        .map_err(views_error)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    Ok(fold.view_at(&state.config().view_settings(), Some(now_ms)))
}

/// A read-model failure as an answer: the store's own classification (503 when unavailable),
/// anything else a 500.
pub(crate) fn views_error(e: views::ViewsError) -> ApiError {
    match e {
        views::ViewsError::Store(e) => ApiError::from(e),
        other => {
            tracing::error!(error = %other, "cannot read an event's view");
            ApiError::internal(format_args!("cannot read the event's view: {other}"))
        }
    }
}

pub(crate) async fn view_or_404(state: &AppState, id: &str) -> Result<EventView, ApiError> {
    load_view(state, id)
        .await?
        .ok_or_else(|| ApiError::event_not_found(id))
}

/// The 202 answer of a command on an event.
pub(crate) async fn accepted(
    state: &AppState,
    id: &str,
    appended: store::Appended,
) -> Result<(StatusCode, Value), ApiError> {
    let view = view_or_404(state, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        json!({ "event": view, "positions": appended.positions }),
    ))
}

/// A refusal of a command on an event that does not exist names the id of the path.
pub(crate) fn on_event(id: &str) -> impl Fn(ApiError) -> ApiError + '_ {
    move |e| {
        if e.code == "event_not_found" {
            ApiError::event_not_found(id)
        } else {
            e
        }
    }
}

pub(crate) async fn deploy(
    State(state): State<AppState>,
    ctx: CommandCtx,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let prepared = (|| {
        let raw = body::bytes(raw)?;
        body::require_json(&headers)?;
        let req: DeployBody = body::parse(&raw)?;
        let id = body::event_id(&req.id)?;
        body::plain_id("environment_id", &req.environment_id)?;
        let schedule =
            crate::event_change::schedule(req.starts_at.as_deref(), req.ends_at.as_deref())?;
        Ok::<_, ApiError>((raw, req, id, schedule))
    })();
    let (raw, req, id, schedule) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("deploy", "rejected");
            return e.into_response();
        }
    };
    commands::run(state, ctx, "deploy", raw, move |state, meta| async move {
        identity::refuse_unmatchable(
            &state.config().moodle,
            req.participants
                .iter()
                .map_while(|p| p.clone().validate().ok()),
        )?;
        let environment = state
            .store()
            .load::<Environment>(&req.environment_id)
            .await?
            .map(|(env, _)| env);
        // What applies where the environment does not say, frozen into `Deployed` with it.
        let context = DeployContext {
            course_defaults: Some(state.config().moodle.course_defaults()),
            today: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        };
        let appended = commands::execute::<VleEvent>(&state, &id, &meta, || EventCommand::Deploy {
            context: context.clone(),
            schedule,
            id: id.clone(),
            environment_id: req.environment_id.clone(),
            name: req.name.clone(),
            participants: req.participants.clone(),
            environment: environment.clone(),
        })
        .await?;
        accepted(&state, &id, appended).await
    })
    .await
}

pub(crate) async fn add_participant(
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
        let participant: ParticipantInput = body::parse(&raw)?;
        Ok::<_, ApiError>((raw, participant, id))
    })();
    let (raw, participant, id) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("add_participant", "rejected");
            return e.into_response();
        }
    };
    commands::run(
        state,
        ctx,
        "add_participant",
        raw,
        move |state, meta| async move {
            identity::refuse_unmatchable(
                &state.config().moodle,
                participant.clone().validate().ok(),
            )?;
            let appended = commands::execute::<VleEvent>(&state, &id, &meta, || {
                EventCommand::AddParticipant {
                    participant: participant.clone(),
                }
            })
            .await
            .map_err(on_event(&id))?;
            accepted(&state, &id, appended).await
        },
    )
    .await
}

pub(crate) async fn remove_participant(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path((raw_id, participant_id)): Path<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = body::plain_id("participant_id", &participant_id) {
        crate::metrics::command("remove_participant", "rejected");
        return e.into_response();
    }
    simple_command(state, ctx, "remove_participant", &raw_id, raw, move || {
        EventCommand::RemoveParticipant {
            participant_id: participant_id.clone(),
        }
    })
    .await
}

pub(crate) async fn end_event(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path(raw_id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    simple_command(state, ctx, "end", &raw_id, raw, || EventCommand::End).await
}

pub(crate) async fn delete_event(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path(raw_id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    simple_command(state, ctx, "delete", &raw_id, raw, || EventCommand::Delete).await
}

/// A command without a body (any body sent is ignored, but bound to the idempotency key).
async fn simple_command(
    state: AppState,
    ctx: CommandCtx,
    name: &'static str,
    raw_id: &str,
    raw: Result<Bytes, BytesRejection>,
    command: impl Fn() -> EventCommand + Send + Sync + 'static,
) -> Response {
    let prepared = (|| {
        let id = body::event_id(raw_id)?;
        let raw = body::bytes(raw)?;
        Ok::<_, ApiError>((raw, id))
    })();
    let (raw, id) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command(name, "rejected");
            return e.into_response();
        }
    };
    commands::run(state, ctx, name, raw, move |state, meta| async move {
        let appended = commands::execute::<VleEvent>(&state, &id, &meta, command)
            .await
            .map_err(on_event(&id))?;
        accepted(&state, &id, appended).await
    })
    .await
}

pub(crate) async fn get_event(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    let id = body::event_id(&raw_id)?;
    Ok(Json(view_or_404(&state, &id).await?))
}

/// One entry of `GET /api/v1/events/{id}/history` (and of the audit log).
pub(crate) fn history_entry(e: store::StoredEvent) -> Value {
    json!({
        "position": e.position,
        "event_id": e.event_id,
        "stream": e.aggregate_type,
        "aggregate_id": e.aggregate_id,
        "sequence": e.sequence,
        "type": e.event_type,
        "version": e.event_version,
        "at": e.recorded_at,
        "payload": e.payload,
        "metadata": e.metadata,
    })
}

pub(crate) async fn history(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::event_id(&raw_id)?;
    let events = state.store().read_event_history(&id).await?;
    if !events.iter().any(|e| e.aggregate_type == "event") {
        return Err(ApiError::event_not_found(&id));
    }
    Ok(Json(Value::Array(
        events.into_iter().map(history_entry).collect(),
    )))
}

/// `POST /api/v1/events/{id}/moodle/retry`: resume a parked saga.
pub(crate) async fn retry_moodle(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path(raw_id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let prepared = (|| {
        let id = body::event_id(&raw_id)?;
        let raw = body::bytes(raw)?;
        if !state.config().moodle.enabled {
            return Err(ApiError::moodle_disabled());
        }
        Ok::<_, ApiError>((raw, id))
    })();
    let (raw, id) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("moodle_retry", "rejected");
            return e.into_response();
        }
    };
    commands::run(
        state,
        ctx,
        "moodle_retry",
        raw,
        move |state, meta| async move {
            view_or_404(&state, &id).await?;
            let by = meta.actor.clone();
            let (resumed, positions) = match state.saga() {
                Some(saga) => {
                    let resumed = saga.retry(&id, &by).await.map_err(|e| {
                        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "saga_unavailable", e)
                    })?;
                    (resumed, Vec::new())
                }
                None => {
                    let appended = commands::execute::<MoodleSync>(&state, &id, &meta, || {
                        MoodleSyncCommand::Resume { by: by.clone() }
                    })
                    .await?;
                    (!appended.positions.is_empty(), appended.positions)
                }
            };
            let view = view_or_404(&state, &id).await?;
            Ok((
                StatusCode::ACCEPTED,
                json!({ "resumed": resumed, "event": view, "positions": positions }),
            ))
        },
    )
    .await
}
