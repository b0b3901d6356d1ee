//! Courses shaped per environment through the HTTP API (issue 12), on the simulator and the real
//! Moodle of `../shared/moodle-lab`: `PUT /api/v1/environments/{id}` asks Moodle about the
//! template course and the categories it newly points at and refuses unknown ones (422, nothing
//! appended); a deploy's `starts_at`/`ends_at` and the global `MOODLE_COURSE_*` defaults reach
//! the course; `PATCH /api/v1/events/{id}` renames and re-dates it, and the course follows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::moodle_sync::MoodleSync;
use moodle::Secret;
use reqwest::{Method, StatusCode};
use saga::{SagaConfig, Worker};
use serde_json::{json, Value};
use support::{code, participant, ApiConfig, Backend, TestApp};

use super::course_shape::course;
use super::identity::harness::{sites, Site};

const RUNS: i64 = 3;
const ARCHIVE: i64 = 4;
const NOWHERE: i64 = 987_654;

/// Moodle on, the API calling `site` (or nowhere: a closed port).
fn config(category: i64) -> ApiConfig {
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some("http://127.0.0.1:9".into());
    config.moodle.token = Some(Secret::new("x"));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(category);
    config
}

async fn app_on(site: &Site, config: ApiConfig) -> TestApp {
    let client = site.client.clone();
    TestApp::spawn_custom(Backend::Sqlite, config, move |s| {
        s.with_moodle_client(client)
    })
    .await
    .expect("sqlite")
}

fn shaped(template: i64) -> Value {
    json!({
        "name": "Networks",
        "moodle_template_course_id": template,
        "moodle_category_id": RUNS,
        "moodle_course_shortname_template": "NET-{event_short_id}-{year}",
        "moodle_course_visibility": "visible",
        "moodle_archive_category_id": ARCHIVE,
    })
}

/// `body` with `field` set to `value`.
fn with(body: &Value, field: &str, value: Value) -> Value {
    let mut b = body.clone();
    b[field] = value;
    b
}

#[tokio::test]
async fn an_environment_is_refused_when_moodle_lacks_what_it_points_at() {
    for site in sites("api_course::an_environment_is_refused").await {
        let app = app_on(&site, config(site.category)).await;
        let good = shaped(site.template);
        let (status, body) = app.put("/api/v1/environments/env", &good).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}: {body}", site.name);
        let env = &body["environment"];
        assert_eq!(env["moodle_category_id"], RUNS);
        assert_eq!(env["moodle_archive_category_id"], ARCHIVE);
        assert_eq!(env["moodle_course_visibility"], "visible");
        assert_eq!(
            env["moodle_course_shortname_template"],
            "NET-{event_short_id}-{year}"
        );
        assert_eq!(env["moodle_course_fullname_template"], Value::Null);

        let head = app.head().await;
        let cases = [
            (
                with(&good, "moodle_template_course_id", json!(NOWHERE)),
                "unknown_template_course",
                "moodle_template_course_id",
            ),
            (
                with(&good, "moodle_category_id", json!(NOWHERE)),
                "unknown_category",
                "moodle_category_id",
            ),
            (
                with(&good, "moodle_archive_category_id", json!(NOWHERE)),
                "unknown_category",
                "moodle_archive_category_id",
            ),
            (
                with(
                    &good,
                    "moodle_course_shortname_template",
                    json!("{event_nmae}"),
                ),
                "invalid_course_template",
                "moodle_course_shortname_template",
            ),
            (
                with(&good, "moodle_course_idnumber_template", json!("LAB")),
                "invalid_course_template",
                "moodle_course_idnumber_template",
            ),
            (
                with(&good, "moodle_course_visibility", json!("sometimes")),
                "invalid_field",
                "moodle_course_visibility",
            ),
        ];
        for (body, want, field) in cases {
            let (status, answer) = app.put("/api/v1/environments/env", &body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {body} → {answer}",
                site.name
            );
            assert_eq!(code(&answer), want, "{}: {answer}", site.name);
            assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
        }
        assert_eq!(app.head().await, head, "{}: nothing appended", site.name);
        let (_, env) = app.get("/api/v1/environments/env").await;
        assert_eq!(env["moodle_category_id"], RUNS, "unchanged");
        app.stop().await;
    }
}

/// With Moodle unreachable, a PUT that points at nothing new is recorded (Moodle is not asked
/// again about what the environment already points at); one that does is refused (502), since
/// nothing can be said about it. With Moodle off, anything well-formed is recorded.
#[tokio::test]
async fn only_what_is_new_is_asked_and_moodle_off_accepts() {
    let app = TestApp::spawn_with(Backend::Sqlite, config(2))
        .await
        .unwrap();
    app.seed_environment("env", 42).await;
    let renamed = json!({"name": "Renamed", "moodle_template_course_id": 42});
    let (status, body) = app.put("/api/v1/environments/env", &renamed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let head = app.head().await;
    let relinked = json!({"name": "Renamed", "moodle_template_course_id": 43});
    let (status, body) = app.put("/api/v1/environments/env", &relinked).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(code(&body), "moodle_unreachable", "{body}");
    assert_eq!(app.head().await, head);
    app.stop().await;

    let off = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let body = with(&shaped(NOWHERE), "moodle_category_id", json!(NOWHERE));
    let (status, answer) = off.put("/api/v1/environments/env", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // A bad template is the domain's rule: refused with Moodle off too.
    let bad = with(&body, "moodle_course_fullname_template", json!("{nope}"));
    let (status, answer) = off.put("/api/v1/environments/env", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(code(&answer), "invalid_course_template");
    off.stop().await;
}

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap()
        .to_rfc3339()
}

async fn recorded(app: &TestApp, id: &str) -> MoodleSync {
    app.store()
        .load::<MoodleSync>(id)
        .await
        .unwrap()
        .map(|(r, _)| r)
        .unwrap_or_default()
}

async fn until(app: &TestApp, id: &str, what: &str, done: impl Fn(&MoodleSync) -> bool) {
    for _ in 0..1200 {
        if done(&recorded(app, id).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id}: never {what}: {:#?}", recorded(app, id).await);
}

#[tokio::test]
async fn dates_and_defaults_reach_the_course_and_a_patch_is_followed() {
    for site in sites("api_course::dates_and_defaults_reach_the_course").await {
        let mut config = config(site.category);
        config.moodle.course.fullname_template = "{event_name} · {environment_name}".into();
        let app = app_on(&site, config).await;
        let settings = app.state.config().moodle.saga();
        let worker = Worker::new(
            app.store().clone(),
            Some(site.client.clone()),
            settings,
            SagaConfig {
                poll_interval: Duration::from_millis(20),
                worker_id: "api-course".into(),
                ..SagaConfig::default()
            },
        );
        let w = worker.clone();
        let saga = tokio::spawn(async move {
            loop {
                let _ = w.run_until_idle().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let (status, body) = app
            .put("/api/v1/environments/env", &shaped(site.template))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");

        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now().timestamp();
        let start = now - now % 60 + 3600;
        let end = start + 48 * 3600;
        let mut deploy = json!({
            "id": id, "environment_id": "env", "name": "Routing lab",
            "participants": [participant(&format!("t-{}", &id[..8]), "instructor")],
            "starts_at": rfc3339(start), "ends_at": "2099-13-01T00:00:00Z",
        });
        let head = app.head().await;
        let (status, answer) = app.post("/api/v1/events", &deploy).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], "ends_at");
        deploy["ends_at"] = json!(rfc3339(start - 60));
        let (status, answer) = app.post("/api/v1/events", &deploy).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(app.head().await, head, "nothing appended");
        deploy["ends_at"] = json!(rfc3339(end));
        let (status, answer) = app.post("/api/v1/events", &deploy).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let view = &answer["event"];
        assert_eq!(
            view["starts_at"],
            json!(rfc3339(start).replace("+00:00", "Z"))
        );
        assert_eq!(view["ends_at"], json!(rfc3339(end).replace("+00:00", "Z")));

        until(&app, &id, "shaped", |m| m.course_props.startdate.is_some()).await;
        let course_id = recorded(&app, &id).await.course_id.unwrap();
        let c = course(&site, course_id).await;
        let year = &rfc3339(start)[..4];
        assert_eq!(c.fullname, "Routing lab · Networks", "{}", site.name);
        assert_eq!(
            c.shortname,
            format!("NET-{}-{year}", &id[..8]),
            "{}",
            site.name
        );
        assert_eq!(c.idnumber.as_deref(), Some(&*format!("ovle-{id}")));
        assert_eq!(
            (c.categoryid, c.startdate, c.enddate),
            (RUNS, Some(start), Some(end))
        );

        // The environment changes later: the deployed event keeps what was frozen at deploy.
        let changed = with(
            &shaped(site.template),
            "moodle_course_shortname_template",
            json!("X-{event_id}"),
        );
        let (status, _) = app.put("/api/v1/environments/env", &changed).await;
        assert_eq!(status, StatusCode::ACCEPTED);

        // PATCH: a new name, no end date; the course follows.
        let path = format!("/api/v1/events/{id}");
        let patch = json!({"name": "Switching lab", "ends_at": null});
        let (status, answer) = app.call(Method::PATCH, &path, Some(&patch)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["event"]["name"], "Switching lab");
        assert!(answer["event"].get("ends_at").is_none(), "{answer}");
        assert_eq!(answer["positions"].as_array().unwrap().len(), 1);
        let (status, again) = app.call(Method::PATCH, &path, Some(&patch)).await;
        assert_eq!(
            (status, &again["positions"]),
            (StatusCode::ACCEPTED, &json!([]))
        );
        until(&app, &id, "renamed", |m| {
            m.course_props.fullname.as_deref() == Some("Switching lab · Networks")
        })
        .await;
        let c = course(&site, course_id).await;
        assert_eq!(c.fullname, "Switching lab · Networks", "{}", site.name);
        assert_eq!(
            c.shortname,
            format!("NET-{}-{year}", &id[..8]),
            "frozen at deploy"
        );
        assert_eq!(
            c.enddate.filter(|e| *e > 0),
            None,
            "{}: no end date",
            site.name
        );

        // Ended: archived, hidden; a PATCH of an ended event is a conflict.
        let (status, _) = app.post(&format!("{path}/end"), &json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        until(&app, &id, "archived", |m| {
            m.course_props.category_id == Some(ARCHIVE) && m.course_visible == Some(false)
        })
        .await;
        assert_eq!(
            course(&site, course_id).await.categoryid,
            ARCHIVE,
            "{}",
            site.name
        );
        let (status, answer) = app
            .call(Method::PATCH, &path, Some(&json!({"name": "Late"})))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(code(&answer), "event_ended");
        let (status, answer) = app
            .call(
                Method::PATCH,
                "/api/v1/events/00000000-0000-4000-8000-000000000000",
                Some(&patch),
            )
            .await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::NOT_FOUND, "event_not_found")
        );
        saga.abort();
        if site.name == "real Moodle" {
            let _ = site.client.delete_courses(&[course_id]).await;
        }
        app.stop().await;
    }
}

/// What was recorded while Moodle was off (or deleted in Moodle since) is reported by the
/// preflight, naming the environment and the field, as are the categories of the settings.
#[tokio::test]
async fn the_preflight_reports_what_environments_and_settings_point_at() {
    for site in sites("api_course::the_preflight_reports").await {
        let mut config = config(site.category);
        config.moodle.course.archive_category_id = Some(NOWHERE);
        let app = app_on(&site, config).await;
        let (status, report) = app.get("/api/v1/moodle/check").await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let problems = report["problems"].to_string();
        assert_eq!(report["ok"], false, "{}: {report}", site.name);
        assert!(
            problems.contains("MOODLE_ARCHIVE_CATEGORY_ID")
                && !problems.contains("MOODLE_COURSE_CATEGORY_ID"),
            "{}: {problems}",
            site.name
        );

        let app = app_on(&site, self::config(site.category)).await;
        let (_, report) = app.get("/api/v1/moodle/check").await;
        assert_eq!(report["ok"], true, "{}: {report}", site.name);
        app.store()
            .execute::<domain::environment::Environment>(
                "old-env",
                domain::environment::EnvironmentCommand::Put {
                    id: "old-env".into(),
                    name: "Recorded while Moodle was off".into(),
                    moodle_template_course_id: Some(NOWHERE),
                    course: domain::course::CourseShape {
                        category_id: Some(NOWHERE + 1),
                        ..Default::default()
                    },
                },
                &store::CommandMeta::new("test"),
            )
            .await
            .unwrap();
        let (_, report) = app.get("/api/v1/moodle/check").await;
        let problems = report["problems"].to_string();
        assert_eq!(report["ok"], false, "{}: {report}", site.name);
        assert!(
            problems.contains("environment old-env moodle_template_course_id")
                && problems.contains("unknown_template_course"),
            "{}: {problems}",
            site.name
        );
        assert!(
            problems.contains("environment old-env moodle_category_id")
                && problems.contains(&format!("category {}", NOWHERE + 1)),
            "{}: {problems}",
            site.name
        );
        app.stop().await;
    }
}
