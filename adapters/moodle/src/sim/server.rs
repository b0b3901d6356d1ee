//! The HTTP side: `/webservice/rest/server.php` as Moodle's REST server answers it, and the
//! `/_sim/...` JSON endpoints that let a test in another process drive the simulator.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::WsError;
use super::faults::{Faults, LostKind, QueuedFault, ScriptedFault, TransientKind};
use super::functions::{self, SiteFacts};
use super::params::{build, parse_pairs, Obj};
use super::Shared;

/// One call as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Sequence number from 1.
    pub seq: u64,
    /// `wsfunction` (empty if missing).
    pub function: String,
    /// Items in the main list argument.
    pub batch_size: usize,
    /// Form variables received (query + body, before truncation).
    pub vars: usize,
    /// Whether `max_input_vars` dropped variables.
    pub truncated: bool,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Time spent answering, in milliseconds.
    pub duration_ms: u64,
    /// `ok`, an errorcode, `http_403`, `http_503`, `html`, `lost_502`, `lost_drop`.
    pub outcome: String,
    /// The raw URL query string, if any (the token must never be there).
    pub query: Option<String>,
    /// HTTP method.
    pub method: String,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/webservice/rest/server.php", get(rest).post(rest))
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
        .with_state(shared)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn to_xml(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<VALUE null=\"null\"/>"),
        Value::Array(items) => {
            out.push_str("<MULTIPLE>\n");
            for i in items {
                to_xml(i, out);
            }
            out.push_str("</MULTIPLE>\n");
        }
        Value::Object(map) => {
            out.push_str("<SINGLE>\n");
            for (k, v) in map {
                out.push_str(&format!("<KEY name=\"{}\">", xml_escape(k)));
                to_xml(v, out);
                out.push_str("</KEY>\n");
            }
            out.push_str("</SINGLE>\n");
        }
        Value::String(s) => out.push_str(&format!("<VALUE>{}</VALUE>", xml_escape(s))),
        Value::Bool(b) => out.push_str(&format!("<VALUE>{}</VALUE>", u8::from(*b))),
        Value::Number(n) => out.push_str(&format!("<VALUE>{n}</VALUE>")),
    }
}

fn answer(json: bool, result: &Result<Value, WsError>) -> Response {
    let (ctype, body) = match (json, result) {
        (true, Ok(v)) => ("application/json", v.to_string()),
        (true, Err(e)) => ("application/json", serde_json::to_string(e).unwrap_or_default()),
        (false, Ok(v)) => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<RESPONSE>\n");
            if !v.is_null() {
                to_xml(v, &mut s);
            }
            s.push_str("</RESPONSE>\n");
            ("application/xml", s)
        }
        (false, Err(e)) => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"{}\">\n<ERRORCODE>{}</ERRORCODE>\n<MESSAGE>{}</MESSAGE>\n</EXCEPTION>\n",
                xml_escape(&e.exception),
                xml_escape(&e.errorcode),
                xml_escape(&e.message)
            ),
        ),
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

fn html_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<!DOCTYPE html><html><head><title>Site maintenance</title></head><body>This site is undergoing maintenance and is currently not available</body></html>",
    )
        .into_response()
}

fn dropped() -> Response {
    let stream = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(Bytes::from_static(b"[{\"id\":")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection drop",
        )),
    ]);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

const RESERVED: &[&str] = &[
    "wstoken",
    "wsfunction",
    "moodlewsrestformat",
    "moodlewssettingraw",
    "moodlewssettingfileurl",
    "moodlewssettingfilter",
    "moodlewssettinglang",
    "moodlewssettingtimezone",
];

/// What to do with one call, decided under the lock before any waiting.
enum Plan {
    Error(WsError),
    Transient(TransientKind),
    Run { lost: Option<LostKind> },
}

async fn rest(
    State(sh): State<Arc<Shared>>,
    method: axum::http::Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (faults, seq) = {
        let mut g = sh.lock();
        g.seq += 1;
        (g.faults.clone(), g.seq)
    };
    let limit = faults.max_input_vars;
    let (mut pairs, t1) = parse_pairs(query.as_deref().unwrap_or("").as_bytes(), limit);
    let (post_pairs, t2) = parse_pairs(&body, limit);
    let vars = pairs.len() + post_pairs.len();
    // array_merge($_GET, $_POST): POST wins.
    pairs.retain(|(k, _)| !post_pairs.iter().any(|(pk, _)| pk == k));
    pairs.extend(post_pairs);
    let root = build(&pairs);
    let top = Obj(&root);
    let scalar = |k: &str| top.opt_str(k).ok().flatten().unwrap_or("").to_string();
    let (token, function, format) = (
        scalar("wstoken"),
        scalar("wsfunction"),
        scalar("moodlewsrestformat"),
    );
    let json = format == "json";
    let args: Vec<_> = root
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .cloned()
        .collect();
    let args = Obj(&args);
    let mut record = CallRecord {
        seq,
        function: function.clone(),
        batch_size: functions::batch_size(args),
        vars,
        truncated: t1 || t2,
        at_ms: now_ms(),
        duration_ms: 0,
        outcome: String::new(),
        query: query.clone(),
        method: method.to_string(),
    };
    let started = Instant::now();
    let response = handle(&sh, &faults, &token, &function, json, args, &mut record).await;
    record.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(function = %record.function, outcome = %record.outcome, ms = record.duration_ms, "sim call");
    sh.lock().log(record);
    response
}

async fn handle(
    sh: &Arc<Shared>,
    faults: &Faults,
    token: &str,
    function: &str,
    json: bool,
    args: Obj<'_>,
    record: &mut CallRecord,
) -> Response {
    if faults.rest_disabled {
        record.outcome = "http_403".into();
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html")],
            "",
        )
            .into_response();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let plan = {
        let mut g = sh.lock();
        if token != sh.cfg.token {
            Plan::Error(WsError::invalid_token())
        } else if function.is_empty() {
            Plan::Error(WsError::new(
                "invalid_parameter_exception",
                "invalidparameter",
                "Invalid parameter value detected",
            ))
        } else if !functions::FUNCTIONS.contains(&function) {
            Plan::Error(WsError::invalid_record("external_functions"))
        } else if sh.cfg.missing_functions.iter().any(|f| f == function) {
            Plan::Error(WsError::access())
        } else {
            match g.faults.take_queued(function) {
                Some(ScriptedFault::Transient { how }) => Plan::Transient(how),
                Some(ScriptedFault::Lost { how }) => Plan::Run { lost: Some(how) },
                Some(ScriptedFault::Exception {
                    exception,
                    errorcode,
                    message,
                }) => Plan::Error(WsError::new(&exception, &errorcode, message)),
                None => {
                    let f = g.faults.clone();
                    if f.transient_error_rate > 0.0
                        && g.rng.gen_bool(f.transient_error_rate.clamp(0.0, 1.0))
                    {
                        Plan::Transient(f.transient_kind)
                    } else if f.lose_response_rate > 0.0
                        && g.rng.gen_bool(f.lose_response_rate.clamp(0.0, 1.0))
                    {
                        Plan::Run {
                            lost: Some(f.lost_kind),
                        }
                    } else {
                        Plan::Run { lost: None }
                    }
                }
            }
        }
    };
    let lost = match plan {
        Plan::Error(e) => {
            record.outcome = e.errorcode.clone();
            return answer(json, &Err(e));
        }
        Plan::Transient(TransientKind::UnableToLock) => {
            record.outcome = "ex_unabletolock".into();
            return answer(json, &Err(WsError::unable_to_lock()));
        }
        Plan::Transient(TransientKind::Http503) => {
            record.outcome = "http_503".into();
            return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
        }
        Plan::Transient(TransientKind::HtmlPage) => {
            record.outcome = "html".into();
            return html_page();
        }
        Plan::Run { lost } => lost,
    };
    // The work runs in its own task: like PHP, it goes on when the client hangs up.
    let owned: Vec<_> = args.0.to_vec();
    let sh2 = sh.clone();
    let f = function.to_string();
    let dup_latency = faults.duplicate_latency_ms;
    let task = tokio::spawn(async move { run(&sh2, &f, Obj(&owned), dup_latency).await });
    let result = match task.await {
        Ok(r) => r,
        Err(_) => Err(WsError::new(
            "coding_exception",
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: simulator task failed",
        )),
    };
    record.outcome = match &result {
        Ok(_) => "ok".into(),
        Err(e) => e.errorcode.clone(),
    };
    match lost {
        Some(LostKind::Http502) => {
            record.outcome = "lost_502".into();
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response()
        }
        Some(LostKind::Drop) => {
            record.outcome = "lost_drop".into();
            dropped()
        }
        None => answer(json, &result),
    }
}

async fn run(
    sh: &Arc<Shared>,
    function: &str,
    args: Obj<'_>,
    dup_latency: u64,
) -> Result<Value, WsError> {
    if function == "core_course_duplicate_course" {
        let (id, visible) = {
            let mut g = sh.lock();
            let r = functions::duplicate_start(&mut g.state, args)?;
            g.persist(sh);
            r
        };
        if dup_latency > 0 {
            tokio::time::sleep(Duration::from_millis(dup_latency)).await;
        }
        let mut g = sh.lock();
        let r = functions::duplicate_finish(&mut g.state, id, visible);
        g.persist(sh);
        return r;
    }
    let mut g = sh.lock();
    let site = SiteFacts {
        release: &sh.cfg.release,
        functions: functions::FUNCTIONS
            .iter()
            .copied()
            .filter(|f| !sh.cfg.missing_functions.iter().any(|m| m == f))
            .collect(),
        siteurl: sh.url.clone(),
    };
    let r = functions::dispatch(&mut g.state, function, args, &site);
    if r.is_ok() && functions::is_mutating(function) {
        g.persist(sh);
    }
    r
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

fn flag(sh: &Arc<Shared>, id: i64, set: impl FnOnce(&mut super::state::SimCourse)) -> Response {
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
