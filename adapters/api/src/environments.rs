//! Environments: create or update (PUT), read. With Moodle on, what a PUT newly points at in
//! Moodle (a template course, a category) is asked about first: a typo is refused before it is
//! recorded, not found when events park.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use domain::course::{CourseShape, CourseVisibility};
use domain::environment::{Environment, EnvironmentCommand};
use domain::DomainError;
use projections::view::EnvironmentView;

use crate::body;
use crate::commands::{self, CommandCtx};
use crate::{ApiError, AppState};

/// `PUT /api/v1/environments/{environment_id}`. A missing field means null (no template, the
/// global default): PUT states the whole environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    name: String,
    #[serde(default)]
    moodle_template_course_id: Option<i64>,
    #[serde(default)]
    moodle_category_id: Option<i64>,
    #[serde(default)]
    moodle_course_fullname_template: Option<String>,
    #[serde(default)]
    moodle_course_shortname_template: Option<String>,
    #[serde(default)]
    moodle_course_idnumber_template: Option<String>,
    #[serde(default)]
    moodle_course_visibility: Option<String>,
    #[serde(default)]
    moodle_archive_category_id: Option<i64>,
}

impl PutBody {
    /// The course shape it states; a visibility that is not one of the three is 422.
    fn course(&self) -> Result<CourseShape, ApiError> {
        let visibility = match self.moodle_course_visibility.as_deref() {
            None => None,
            Some(v) => Some(CourseVisibility::parse(v).ok_or_else(|| {
                ApiError::from(DomainError::invalid(
                    "moodle_course_visibility",
                    "must be visible, hidden or at_start",
                ))
            })?),
        };
        Ok(CourseShape {
            category_id: self.moodle_category_id,
            fullname_template: self.moodle_course_fullname_template.clone(),
            shortname_template: self.moodle_course_shortname_template.clone(),
            idnumber_template: self.moodle_course_idnumber_template.clone(),
            visibility,
            archive_category_id: self.moodle_archive_category_id,
        })
    }
}

/// With Moodle on, refuses (422, before anything is appended) a template course or a category
/// that this PUT newly points at and Moodle does not have. What the environment already pointed
/// at is not asked again, so a rename does not depend on Moodle being up.
async fn check_targets(
    state: &AppState,
    id: &str,
    template: Option<i64>,
    course: &CourseShape,
) -> Result<(), ApiError> {
    let Some(client) = state.moodle() else {
        return Ok(());
    };
    let before = state
        .store()
        .load::<Environment>(id)
        .await?
        .map(|(env, _)| env)
        .unwrap_or_default();
    // What this PUT points at that the environment did not already.
    let was = moodle::targets::of_shape(before.template_course_id, &before.course);
    let targets: Vec<_> = moodle::targets::of_shape(template, course)
        .into_iter()
        .filter(|t| !was.contains(t))
        .collect();
    require_targets(client, &targets).await
}

/// 422 `unknown_template_course` / `unknown_category` for the first of `targets` Moodle does
/// not have (details: the field and the id), 502 when Moodle cannot be asked.
pub(crate) async fn require_targets(
    client: &moodle::MoodleClient,
    targets: &[(&str, moodle::Target)],
) -> Result<(), ApiError> {
    let missing = moodle::targets::missing(client, targets)
        .await
        .map_err(crate::moodle_routes::moodle_error)?;
    match missing.first() {
        None => Ok(()),
        Some((field, target)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            target.missing_code(),
            target.missing_message(field),
        )
        .with_details(json!({ "field": field, "moodle_id": target.id() }))),
    }
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
        let course = req.course()?;
        Ok::<_, ApiError>((raw, req, course))
    })();
    let (raw, req, course) = match prepared {
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
            // The domain's own checks (names, templates) first: they need no Moodle.
            Environment::default().decide_put(
                &id,
                &req.name,
                req.moodle_template_course_id,
                &course,
            )?;
            check_targets(&state, &id, req.moodle_template_course_id, &course).await?;
            let appended =
                commands::execute::<Environment>(&state, &id, &meta, || EnvironmentCommand::Put {
                    course: course.clone(),
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
