//! Moodle look-ups for the OpenVLE back end (`404 moodle_disabled` while the integration is off).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use moodle::{MoodleClient, MoodleError, UserField};

use crate::{ApiError, AppState};

fn client(state: &AppState) -> Result<&MoodleClient, ApiError> {
    state.moodle().ok_or_else(ApiError::moodle_disabled)
}

pub(crate) fn moodle_error(e: MoodleError) -> ApiError {
    let (code, details) = match &e {
        MoodleError::Moodle { errorcode, .. } => {
            ("moodle_error", json!({ "errorcode": errorcode }))
        }
        MoodleError::Transport { .. } => ("moodle_unreachable", json!({})),
        _ => ("moodle_error", json!({})),
    };
    ApiError::new(StatusCode::BAD_GATEWAY, code, e.to_string()).with_details(details)
}

pub(crate) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query's parameters; one not in `allowed` is 400 `invalid_request` naming it.
pub(crate) fn params(query: Params, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let Query(map) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    if let Some(other) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(
            ApiError::invalid_request(format!("unknown query parameter {other:?}"))
                .with_details(json!({ "parameter": other, "allowed": allowed })),
        );
    }
    Ok(map)
}

fn course_json(c: &moodle::Course) -> Value {
    json!({
        "id": c.id,
        "shortname": c.shortname,
        "fullname": c.fullname,
        "category_id": c.categoryid,
        "visible": c.visible,
    })
}

/// `GET /api/v1/moodle/courses?search=<text>&page=<n>&per_page=<n>`.
pub(crate) async fn courses(
    State(state): State<AppState>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let client = client(&state)?;
    let p = params(query, &["search", "page", "per_page"])?;
    let search = p.get("search").map(|s| s.trim()).unwrap_or("");
    if search.is_empty() {
        return Err(ApiError::invalid_request("search must be a non-empty text")
            .with_details(json!({ "parameter": "search" })));
    }
    let num = |name: &str, default: u32, max: u32| -> Result<u32, ApiError> {
        match p.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| {
                ApiError::invalid_request(format!("{name} must be an integer from 0 to {max}"))
                    .with_details(json!({ "parameter": name, "value": v }))
            }),
        }
    };
    let page = num("page", 0, 10_000)?;
    let per_page = num("per_page", 20, 100)?;
    let found = client
        .search_courses(search, page, per_page.max(1))
        .await
        .map_err(moodle_error)?;
    Ok(Json(json!({
        "total": found.total,
        "courses": found.courses.iter().map(course_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/moodle/users?email=<e>` or `?username=<u>`.
pub(crate) async fn users(
    State(state): State<AppState>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let client = client(&state)?;
    let p = params(query, &["email", "username"])?;
    let (field, value) = match (p.get("email"), p.get("username")) {
        (Some(e), None) if !e.trim().is_empty() => (UserField::Email, e.trim().to_string()),
        (None, Some(u)) if !u.trim().is_empty() => (UserField::Username, u.trim().to_lowercase()),
        _ => {
            return Err(ApiError::invalid_request(
                "give exactly one of email or username (non-empty)",
            ))
        }
    };
    // Decided here, by the rule every participant's email obeys: Moodle would only answer an
    // exception (a 502 that blames Moodle for the client's mistake).
    if field == UserField::Email && !domain::participant::is_valid_email(&value) {
        return Err(domain::DomainError::InvalidEmail(value).into());
    }
    let users = client
        .get_users_by_field(field, &[value])
        .await
        .map_err(moodle_error)?;
    Ok(Json(json!({
        "exists": !users.is_empty(),
        "users": users.iter().map(|u| json!({
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "first_name": u.firstname,
            "last_name": u.lastname,
            "suspended": u.suspended,
        })).collect::<Vec<_>>(),
    })))
}

/// What every recorded environment points at in Moodle (template course, categories), for the
/// preflight of the API and of `moodle check`.
pub async fn environment_targets(
    store: &store::Store,
) -> Result<Vec<(String, moodle::Target)>, store::StoreError> {
    let environments = store.load_all::<domain::environment::Environment>().await?;
    Ok(environments
        .iter()
        .flat_map(|(_, env)| moodle::targets::of_environment(env))
        .collect())
}

/// `GET /api/v1/moodle/check[?probe=true[&template=ID]]`: the preflight of `moodle check`;
/// with `probe=true` its provisioning round too, which changes Moodle: the writer token only
/// (an auditor's is refused with `403 forbidden`; without configured tokens, loopback, anyone).
pub(crate) async fn check(
    State(state): State<AppState>,
    actor: Option<axum::Extension<crate::Actor>>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let params = params(query, &["probe", "template"])?;
    let probe = match params.get("probe").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "probe must be true or false, not {other:?}"
            ))
            .with_details(json!({ "parameter": "probe" })))
        }
    };
    let template = match params.get("template") {
        None => None,
        Some(_) if !probe => {
            return Err(ApiError::invalid_request("template goes with probe=true")
                .with_details(json!({ "parameter": "template" })))
        }
        Some(t) => match t.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "template must be a Moodle course id, not {t:?}"
                ))
                .with_details(json!({ "parameter": "template" })))
            }
        },
    };
    let actor = actor.map_or(crate::Actor::Anonymous, |a| a.0);
    if probe && actor == crate::Actor::Auditor {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "probe=true changes Moodle (a scratch course and account, then deleted): the writer token only",
        ));
    }
    let client = client(&state)?.clone();
    let targets = environment_targets(state.store()).await?;
    let settings = state.config().moodle.clone();
    let report = if probe {
        // In a task of its own: a client that goes away must not stop the round before its
        // cleanup (dropping the handler's future would).
        let opts = moodle::ProbeOptions { template };
        tokio::spawn(
            async move { moodle::check_and_probe(&client, &settings, &targets, &opts).await },
        )
        .await
        .map_err(ApiError::internal)?
    } else {
        moodle::check_with(&client, &settings, &targets).await
    };
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// What `POST /api/v1/moodle/retry` resumes.
#[derive(Debug, Clone)]
enum RetryTarget {
    /// Every parked event, or (`code`) those parked with it.
    Parked(Option<String>),
    /// One event (its saga and its parked participants).
    Event(String),
    /// One parked participant of one event.
    Participant(String, String),
}

/// Parses the body: `{}` (or none), `{"code": C}`, `{"event_id": E}`, or
/// `{"event_id": E, "participant_id": P}`; a code beside an event id is 422 `invalid_field`.
fn retry_target(raw: &[u8], headers: &axum::http::HeaderMap) -> Result<RetryTarget, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        event_id: Option<String>,
        #[serde(default)]
        participant_id: Option<String>,
    }
    let body: Body = if raw.is_empty() {
        Body::default()
    } else {
        crate::body::require_json(headers)?;
        crate::body::parse(raw)?
    };
    match (body.code, body.event_id, body.participant_id) {
        (code, None, None) => {
            if let Some(code) = &code {
                crate::body::plain_id("code", code)?;
            }
            Ok(RetryTarget::Parked(code))
        }
        (None, Some(event), None) => Ok(RetryTarget::Event(crate::body::event_id(&event)?)),
        (None, Some(event), Some(participant)) => {
            crate::body::plain_id("participant_id", &participant)?;
            Ok(RetryTarget::Participant(
                crate::body::event_id(&event)?,
                participant,
            ))
        }
        (None, None, Some(_)) => Err(domain::DomainError::invalid(
            "event_id",
            "is required beside participant_id",
        )
        .into()),
        (Some(_), _, _) => Err(domain::DomainError::invalid(
            "code",
            "retries every event parked with it: leave it out to retry one event",
        )
        .into()),
    }
}

/// `POST /api/v1/moodle/retry`: resumes every parked event (`{}`), those parked with a code
/// (`{"code": C}`, as `openvle-moodle retry --all --code C`), one event (`{"event_id": E}`), or
/// one parked participant (`{"event_id": E, "participant_id": P}`). Writers only (a POST).
pub(crate) async fn retry_parked(
    State(state): State<AppState>,
    ctx: crate::commands::CommandCtx,
    headers: axum::http::HeaderMap,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let prepared = (|| {
        if !state.config().moodle.enabled {
            return Err(ApiError::moodle_disabled());
        }
        let raw = crate::body::bytes(raw)?;
        let target = retry_target(&raw, &headers)?;
        Ok::<_, ApiError>((raw, target))
    })();
    let (raw, target) = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::command("moodle_retry_parked", "rejected");
            return e.into_response();
        }
    };
    crate::commands::run(
        state,
        ctx,
        "moodle_retry_parked",
        raw,
        move |state, meta| async move {
            let saga = state.saga().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "saga_unavailable",
                    "no saga runs in this process to resume the parked events",
                )
            })?;
            let unavailable =
                |e: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "saga_unavailable", e);
            let by = &meta.actor;
            let answer = match &target {
                RetryTarget::Parked(code) => {
                    let resumed = saga
                        .retry_parked(code.as_deref(), by)
                        .await
                        .map_err(unavailable)?;
                    json!({ "code": code, "resumed": resumed })
                }
                RetryTarget::Event(id) => {
                    crate::events::view_or_404(&state, id).await?;
                    let resumed = saga.retry(id, by).await.map_err(unavailable)?;
                    json!({ "event_id": id, "resumed": if resumed { vec![id.clone()] } else { Vec::new() } })
                }
                RetryTarget::Participant(id, participant) => {
                    let view = crate::events::view_or_404(&state, id).await?;
                    let known = view.participants.iter().any(|p| &p.id == participant)
                        || view.moodle.enrolments.iter().any(|e| &e.participant_id == participant);
                    if !known {
                        return Err(domain::DomainError::ParticipantNotFound(participant.clone()).into());
                    }
                    let resumed = saga
                        .retry_participant(id, participant, by)
                        .await
                        .map_err(unavailable)?;
                    let resumed = if resumed { vec![participant.clone()] } else { Vec::new() };
                    json!({ "event_id": id, "participant_id": participant, "resumed": resumed })
                }
            };
            Ok((StatusCode::ACCEPTED, answer))
        },
    )
    .await
}
