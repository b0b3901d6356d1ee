//! Environments: create or update (PUT), read.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use domain::environment::{Environment, EnvironmentCommand};
use projections::view::EnvironmentView;

use crate::body;
use crate::commands::{self, CommandCtx};
use crate::{ApiError, AppState};

/// `PUT /api/v1/environments/{environment_id}`. A missing `moodle_template_course_id` means
/// null (no template): PUT states the whole environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    name: String,
    #[serde(default)]
    moodle_template_course_id: Option<i64>,
}

async fn load(state: &AppState, id: &str) -> Result<Option<EnvironmentView>, ApiError> {
    Ok(state
        .store()
        .load::<Environment>(id)
        .await?
        .and_then(|(env, _)| EnvironmentView::of(&env)))
}

pub(crate) async fn put_environment(
    State(state): State<AppState>,
    ctx: CommandCtx,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let prepared = (|| {
        body::plain_id("environment_id", &id)?;
        let raw = body::bytes(raw)?;
        body::require_json(&headers)?;
        let req: PutBody = body::parse(&raw)?;
        Ok::<_, ApiError>((raw, req))
    })();
    let (raw, req) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("put_environment", "rejected");
            return e.into_response();
        }
    };
    commands::run(
        state,
        ctx,
        "put_environment",
        raw,
        move |state, meta| async move {
            let appended =
                commands::execute::<Environment>(&state, &id, &meta, || EnvironmentCommand::Put {
                    course: Default::default(),
                    id: id.clone(),
                    name: req.name.clone(),
                    moodle_template_course_id: req.moodle_template_course_id,
                })
                .await?;
            let view = load(&state, &id)
                .await?
                .ok_or_else(|| ApiError::environment_not_found(&id))?;
            Ok((
                StatusCode::ACCEPTED,
                json!({ "environment": view, "positions": appended.positions }),
            ))
        },
    )
    .await
}

pub(crate) async fn get_environment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EnvironmentView>, ApiError> {
    body::plain_id("environment_id", &id)?;
    load(&state, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::environment_not_found(&id))
}
