//! The HTTP side: `/webservice/rest/server.php` as Moodle's REST server answers it (this file:
//! authentication, faults, running a function, the duplication's phases), what the answers look
//! like on the wire ([`answer`]), and the `/_sim/...` JSON endpoints that let a test in another
//! process drive the simulator ([`admin`]).

mod admin;
mod answer;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::WsError;
use super::faults::{Faults, LostKind, ScriptedFault, TransientKind};
use super::functions::{self, duplicate, Ctx};
use super::params::{build, parse_pairs, Obj};
use super::Shared;
use answer::{answer, dropped, html_page};

pub use admin::DirectUser;

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
    let rest_route = Router::new().route("/webservice/rest/server.php", get(rest).post(rest));
    admin::routes(rest_route).with_state(shared)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    /// A 200 answer that applies nothing.
    Answer(Value),
    Transient(TransientKind),
    Run {
        lost: Option<LostKind>,
    },
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
    let version = sh.cfg.moodle_version;
    let plan = {
        let mut g = sh.lock();
        if token != sh.cfg.token {
            Plan::Error(WsError::invalid_token().in_version(version))
        } else if function.is_empty() {
            Plan::Error(WsError::invalid_param().in_version(version))
        } else if !functions::FUNCTIONS.contains(&function) {
            Plan::Error(WsError::invalid_record("external_functions").in_version(version))
        } else if sh.cfg.missing_functions.iter().any(|f| f == function) {
            Plan::Error(WsError::access().in_version(version))
        } else {
            match g.faults.take_queued(function) {
                Some(ScriptedFault::Transient { how }) => Plan::Transient(how),
                Some(ScriptedFault::Lost { how }) => Plan::Run { lost: Some(how) },
                Some(ScriptedFault::Exception {
                    exception,
                    errorcode,
                    message,
                }) => Plan::Error(WsError::new(&exception, &errorcode, message)),
                Some(ScriptedFault::EchoWarning { warningcode }) => {
                    Plan::Answer(echo_warning(token, function, &warningcode))
                }
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
        Plan::Answer(v) => {
            record.outcome = "echo_warning".into();
            return answer(json, &Ok(v));
        }
        Plan::Transient(TransientKind::UnableToLock) => {
            record.outcome = "ex_unabletolock".into();
            return answer(json, &Err(WsError::unable_to_lock().in_version(version)));
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
        Err(_) => Err(WsError::coding("simulator task failed")),
    }
    .map_err(|e| e.in_version(version));
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

/// `{"warnings":[…]}` quoting the request: the token plain and form-encoded, in the message and
/// the item.
fn echo_warning(token: &str, function: &str, warningcode: &str) -> Value {
    let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    serde_json::json!({ "warnings": [{
        "item": format!("course wstoken={token}"),
        "itemid": 0,
        "warningcode": warningcode,
        "message": format!("refused request wstoken={token}&wsfunction={function} (raw: wstoken={encoded})"),
    }]})
}

async fn run(
    sh: &Arc<Shared>,
    function: &str,
    args: Obj<'_>,
    dup_latency: u64,
) -> Result<Value, WsError> {
    if function == "core_course_duplicate_course" {
        return run_duplicate(sh, args, dup_latency).await;
    }
    let mut g = sh.lock();
    let g = &mut *g;
    let release = sh
        .cfg
        .release
        .clone()
        .unwrap_or_else(|| sh.cfg.moodle_version.release().to_string());
    let ctx = Ctx {
        version: sh.cfg.moodle_version,
        version_number: match &sh.cfg.release {
            Some(r) => functions::version_number_of(r),
            None => sh.cfg.moodle_version.version_number(),
        },
        release: &release,
        functions: functions::FUNCTIONS
            .iter()
            .copied()
            .filter(|f| !sh.cfg.missing_functions.iter().any(|m| m == f))
            .collect(),
        siteurl: sh.url.clone(),
        site_admin: sh.cfg.site_admin,
        building: &g.building,
    };
    let r = functions::dispatch(&mut g.state, function, args, &ctx);
    if r.is_ok() && functions::is_mutating(function) {
        g.persist(sh);
    }
    r
}

/// A duplication, phase by phase ([`duplicate`]), with the lock released between phases so that
/// other calls see the site as they would on a real one in the meantime.
async fn run_duplicate(sh: &Arc<Shared>, args: Obj<'_>, latency_ms: u64) -> Result<Value, WsError> {
    let pause = |share: f64| {
        let ms = (latency_ms as f64 * share).round() as u64;
        async move {
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    };
    let [backup, skeleton, restore] = duplicate::PHASE_SHARES;
    let plan = duplicate::check(&sh.lock().state, args)?;
    pause(backup).await;
    let template = plan.template();
    let id = {
        let mut g = sh.lock();
        let g = &mut *g;
        let rate = g.faults.backup_clash_rate.clamp(0.0, 1.0);
        let file = g.backups.entry(template).or_default();
        if *file > 0 && rate > 0.0 && g.rng.gen_bool(rate) {
            return Err(WsError::backup_file_clash(duplicate::context_id(template)));
        }
        *file += 1;
        let id = duplicate::create_skeleton(&mut g.state, &plan);
        if let Ok(id) = id {
            g.building.insert(id);
            g.persist(sh);
        }
        id
    };
    let result = match id {
        Ok(id) => restore_and_finish(sh, id, &plan, pause(skeleton), pause(restore)).await,
        Err(e) => Err(e),
    };
    let mut g = sh.lock();
    if let Some(n) = g.backups.get_mut(&template) {
        *n = n.saturating_sub(1);
    }
    result
}

/// The duplication's restore and its end (the backup file is removed by the caller).
async fn restore_and_finish(
    sh: &Arc<Shared>,
    id: i64,
    plan: &duplicate::Plan,
    skeleton: impl std::future::Future<Output = ()>,
    restore: impl std::future::Future<Output = ()>,
) -> Result<Value, WsError> {
    skeleton.await;
    {
        let mut g = sh.lock();
        g.building.remove(&id);
        duplicate::restore(&mut g.state, id, plan)?;
        g.persist(sh);
    }
    restore.await;
    let mut g = sh.lock();
    let r = duplicate::finish(&mut g.state, id, plan);
    g.persist(sh);
    r
}
