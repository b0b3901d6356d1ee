//! The `/_sim/...` JSON endpoints: what a test in another process uses to look at the site,
//! change it as an operator would, and script faults. No token: listen on loopback only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::CallRecord;
use crate::faults::{Faults, QueuedFault};
use crate::Shared;

/// Adds the `/_sim/...` routes.
pub(super) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/_sim/state", get(state))
        .route("/_sim/wipe", post(wipe))
        .route(
            "/_sim/faults",
            get(get_faults).put(put_faults).post(put_faults),
        )
        .route("/_sim/faults/queue", post(queue_fault))
        .route("/_sim/calls", get(calls).delete(reset_calls))
        .route("/_sim/courses/{id}", delete(delete_course))
        .route("/_sim/courses/{id}/visible", post(set_visible))
        .route("/_sim/courses/{id}/manual_enrol", post(set_manual))
        .route("/_sim/unenrol", post(unenrol_direct))
        .route("/_sim/users", post(create_user))
}

async fn state(State(sh): State<Arc<Shared>>) -> Response {
    Json(sh.lock().state.clone()).into_response()
}

async fn wipe(State(sh): State<Arc<Shared>>) -> Response {
    let mut g = sh.lock();
    g.state = g.state.wiped();
    g.persist(&sh);
    Json(g.state.clone()).into_response()
}

async fn get_faults(State(sh): State<Arc<Shared>>) -> Response {
    Json(sh.lock().faults.clone()).into_response()
}

async fn put_faults(State(sh): State<Arc<Shared>>, Json(f): Json<Faults>) -> Response {
    sh.lock().faults = f.clone();
    Json(f).into_response()
}

async fn queue_fault(State(sh): State<Arc<Shared>>, Json(q): Json<QueuedFault>) -> Response {
    sh.lock().faults.queue.push(q);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Serialize)]
struct CallsBody {
    calls: Vec<CallRecord>,
    counts: std::collections::BTreeMap<String, u64>,
}

async fn calls(State(sh): State<Arc<Shared>>) -> Response {
    let g = sh.lock();
    Json(CallsBody {
        calls: g.calls.clone(),
        counts: g.counts.clone(),
    })
    .into_response()
}

async fn reset_calls(State(sh): State<Arc<Shared>>) -> Response {
    let mut g = sh.lock();
    g.calls.clear();
    g.counts.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_course(State(sh): State<Arc<Shared>>, Path(id): Path<i64>) -> Response {
    let mut g = sh.lock();
    let found = g.state.delete_course(id);
    g.persist(&sh);
    Json(serde_json::json!({"deleted": found})).into_response()
}

#[derive(Deserialize)]
struct Flag {
    #[serde(alias = "visible", alias = "enabled")]
    value: bool,
}

async fn set_visible(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Json(f): Json<Flag>,
) -> Response {
    flag(&sh, id, |c| c.visible = f.value)
}

async fn set_manual(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Json(f): Json<Flag>,
) -> Response {
    flag(&sh, id, |c| c.manual_enrol = f.value)
}

fn flag(sh: &Arc<Shared>, id: i64, set: impl FnOnce(&mut crate::state::SimCourse)) -> Response {
    let mut g = sh.lock();
    let Some(c) = g.state.courses.get_mut(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    set(c);
    let c = c.clone();
    g.persist(sh);
    Json(c).into_response()
}

#[derive(Deserialize)]
struct UnenrolBody {
    user_id: i64,
    course_id: i64,
}

async fn unenrol_direct(State(sh): State<Arc<Shared>>, Json(b): Json<UnenrolBody>) -> Response {
    let mut g = sh.lock();
    g.state.unenrol(b.user_id, b.course_id);
    g.persist(&sh);
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `POST /_sim/users`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DirectUser {
    /// Username (not validated: operators can create what Moodle's UI would).
    pub username: String,
    /// Email.
    pub email: String,
    /// First name.
    #[serde(default = "default_first")]
    pub firstname: String,
    /// Last name.
    #[serde(default = "default_last")]
    pub lastname: String,
    /// Auth plugin.
    #[serde(default = "default_auth")]
    pub auth: String,
}

fn default_first() -> String {
    "Sim".into()
}
fn default_last() -> String {
    "User".into()
}
fn default_auth() -> String {
    "manual".into()
}

async fn create_user(State(sh): State<Arc<Shared>>, Json(u): Json<DirectUser>) -> Response {
    let mut g = sh.lock();
    let user = g
        .state
        .add_user(&u.username, &u.email, &u.firstname, &u.lastname, &u.auth);
    g.persist(&sh);
    Json(user).into_response()
}
