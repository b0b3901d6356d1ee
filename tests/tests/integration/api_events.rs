//! Happy paths of the command API: environments, deploy, participants, end, delete, views,
//! history (domain and saga events interleaved), a 10,000-participant deploy and concurrent adds.

use reqwest::StatusCode;
use serde_json::{json, Value};

use domain::moodle_sync::{MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use store::CommandMeta;
use support::{both_backends, deploy_body, participant, ApiConfig, Backend, TestApp};

/// Moodle switched on (pointed nowhere: the API itself never calls Moodle for commands).
fn moodle_on() -> ApiConfig {
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some("http://127.0.0.1:9".into());
    config.moodle.token = Some(moodle::Secret::new("x"));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(2);
    config
}

async fn environments(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = app.environment("env-1", Some(42)).await;
    assert_eq!(
        body["environment"],
        json!({
            "id": "env-1",
            "name": "Environment env-1",
            "moodle_template_course_id": 42,
            "moodle_category_id": null,
            "moodle_course_fullname_template": null,
            "moodle_course_shortname_template": null,
            "moodle_course_idnumber_template": null,
            "moodle_course_visibility": null,
            "moodle_archive_category_id": null,
        })
    );
    assert_eq!(
        body["positions"].as_array().unwrap().len(),
        2,
        "created + linked"
    );

    let (status, got) = app.get("/api/v1/environments/env-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, body["environment"]);

    // Same state again: nothing appended.
    let head = app.head().await;
    let again = app.environment("env-1", Some(42)).await;
    assert_eq!(again["positions"], json!([]));
    assert_eq!(app.head().await, head);

    // Rename and unlink (template omitted means null).
    let (status, renamed) = app
        .put("/api/v1/environments/env-1", &json!({"name": "Renamed"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{renamed}");
    assert_eq!(renamed["environment"]["name"], "Renamed");
    assert_eq!(
        renamed["environment"]["moodle_template_course_id"],
        Value::Null
    );
    assert_eq!(renamed["positions"].as_array().unwrap().len(), 2);

    let (status, history) = app.get("/api/v1/audit?stream=env-1").await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "EnvironmentCreated",
            "TemplateLinked",
            "EnvironmentRenamed",
            "TemplateUnlinked"
        ]
    );
}

async fn event_lifecycle(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .post("/api/v1/events", &deploy_body(&id, "env", 3))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let event = &body["event"];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["environment_id"], "env");
    assert_eq!(event["status"], "deployed");
    assert_eq!(event["participants"].as_array().unwrap().len(), 3);
    assert_eq!(event["participants"][0]["role"], "instructor");
    assert_eq!(event["moodle"]["state"], "disabled");
    assert_eq!(event["moodle"]["pending_steps"], 0);
    assert_eq!(event["moodle"]["last_error"], Value::Null);
    let positions = body["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].as_i64().unwrap(), app.head().await);

    let (status, view) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&view, event);

    // An uppercase spelling of the id is the same event.
    let (status, _) = app
        .get(&format!("/api/v1/events/{}", id.to_uppercase()))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app
        .post(
            &format!("/api/v1/events/{id}/participants"),
            &participant("late", "student"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event"]["participants"].as_array().unwrap().len(), 4);
    assert_eq!(body["event"]["participants"][3]["id"], "late");

    let (status, body) = app
        .delete(&format!("/api/v1/events/{id}/participants/p00001"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ids: Vec<&str> = body["event"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p00000", "p00002", "late"]);

    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/events/{id}/end"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event"]["status"], "ended");

    let (status, body) = app.delete(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event"]["status"], "deleted");

    let (status, view) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "deleted");

    let (status, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Deployed",
            "ParticipantAdded",
            "ParticipantRemoved",
            "Ended",
            "Deleted"
        ]
    );
    for (i, e) in history.as_array().unwrap().iter().enumerate() {
        assert_eq!(e["stream"], "event");
        assert_eq!(e["sequence"], i as u64 + 1);
        assert_eq!(e["metadata"]["actor"], "anonymous");
        assert!(e["at"].is_string());
        assert!(e["event_id"].is_string());
    }
}

async fn moodle_states_in_the_view(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, moodle_on()).await else {
        return;
    };
    app.seed_environment("linked", 42).await;
    app.environment("plain", None).await;
    let linked = app.deploy("linked", 3).await;
    let plain = app.deploy("plain", 3).await;

    let (_, view) = app.get(&format!("/api/v1/events/{plain}")).await;
    assert_eq!(view["moodle"]["state"], "not_linked");

    let (_, view) = app.get(&format!("/api/v1/events/{linked}")).await;
    assert_eq!(view["moodle"]["state"], "pending");
    assert_eq!(view["moodle"]["pending_steps"], 4, "course + 3 enrolments");
    assert_eq!(view["moodle"]["course_id"], Value::Null);
    assert_eq!(view["moodle"]["enrolments"][0]["role_id"], 3);
    assert_eq!(view["moodle"]["enrolments"][1]["role_id"], 5);
    assert_eq!(view["moodle"]["enrolments"][1]["state"], "pending");

    let (status, caps) = app.get("/api/v1/capabilities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(caps["moodle"]["enabled"], true);
}

async fn history_interleaves_both_streams(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, moodle_on()).await else {
        return;
    };
    app.seed_environment("env", 42).await;
    let id = app.deploy("env", 1).await;
    let deployed_id = domain::event_id_of("event", &id, 1);
    // The saga records a course (as the worker would).
    app.store()
        .execute::<MoodleSync>(
            &id,
            MoodleSyncCommand::Record(vec![MoodleSyncEvent::CourseDuplicated {
                course_id: 77,
                shortname: "ovle-x".into(),
                template_course_id: 42,
                category_id: 2,
                adopted: false,
                caused_by: deployed_id,
            }]),
            &CommandMeta::new("saga-test"),
        )
        .await
        .expect("record");
    let (status, _) = app
        .post(
            &format!("/api/v1/events/{id}/participants"),
            &participant("second", "student"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().unwrap();
    let summary: Vec<(&str, &str, i64)> = history
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("event", "Deployed", 1),
            ("moodle_sync", "CourseDuplicated", 1),
            ("event", "ParticipantAdded", 2)
        ]
    );
    let positions: Vec<i64> = history
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(history[0]["event_id"], deployed_id.to_string());
    assert_eq!(history[1]["metadata"]["actor"], "saga-test");
    assert_eq!(history[2]["metadata"]["actor"], "anonymous");

    let (_, view) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(view["moodle"]["course_id"], 77);
    assert_eq!(view["moodle"]["course_visible"], true);
    assert_eq!(view["moodle"]["state"], "pending");
    assert_eq!(
        view["moodle"]["pending_steps"], 3,
        "the course's shape (its idnumber, names) and 2 enrolments"
    );
}

async fn ten_thousand_participants(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("big", None).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = deploy_body(&id, "big", 10_000);
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size > 1024 * 1024, "the body ({size} bytes) is over 1 MiB");
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{}", answer["error"]);
    assert_eq!(
        answer["event"]["participants"].as_array().unwrap().len(),
        10_000
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/events/{id}/participants"),
            &participant("p10000", "student"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, view) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(view["participants"].as_array().unwrap().len(), 10_001);
}

async fn concurrent_adds_lose_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 1).await;
    let n = 24;
    let requests = (0..n).map(|i| {
        let app = &app;
        let id = &id;
        async move {
            app.post(
                &format!("/api/v1/events/{id}/participants"),
                &participant(&format!("c{i}"), "student"),
            )
            .await
        }
    });
    let results = futures::future::join_all(requests).await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
    }
    let (_, view) = app.get(&format!("/api/v1/events/{id}")).await;
    let participants = view["participants"].as_array().unwrap();
    assert_eq!(participants.len(), n + 1);
    for i in 0..n {
        let pid = format!("c{i}");
        assert!(
            participants.iter().any(|p| p["id"] == pid.as_str()),
            "{pid} lost"
        );
    }
    let (_, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    let sequences: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=(n as i64 + 1)).collect::<Vec<_>>());
}

/// With the projector caught up, the API answers from the read model (the stored fold plus the
/// events after it): the same answers as folding the log, and a 202 shows its own command.
async fn answers_from_the_read_model_and_its_tail(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, moodle_on()).await else {
        return;
    };
    app.seed_environment("env", 42).await;
    let id = app.deploy("env", 3).await;
    let path = format!("/api/v1/events/{id}");
    let (status, folded) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let settings = app.state.config().view_settings();
    views::catch_up(app.store(), &settings)
        .await
        .expect("catch up");
    let (status, projected) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(projected, folded);

    // Read-your-writes: the command lands after the views' checkpoint, its 202 shows it.
    let (status, answer) = app
        .post(
            &format!("{path}/participants"),
            &participant("late", "student"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let ids: Vec<&str> = answer["event"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids.last(), Some(&"late"));
    let (_, got) = app.get(&path).await;
    assert_eq!(got, answer["event"]);

    // The answer starts from the stored fold: a mark put into it shows, the tail on top.
    let mark = format!(
        "UPDATE event_views SET fold = replace(fold, '\"name\":\"Lab run\"', \
         '\"name\":\"from the read model\"') WHERE event_id = '{id}'"
    );
    match app.store().pool() {
        store::DbPool::Sqlite(p) => sqlx::query(&mark).execute(p).await.map(|_| ()),
        store::DbPool::Postgres(p) => sqlx::query(&mark).execute(p).await.map(|_| ()),
    }
    .expect("mark the stored fold");
    let (_, marked) = app.get(&path).await;
    assert_eq!(marked["name"], "from the read model");
    assert_eq!(marked["participants"], got["participants"]);
}

both_backends!(
    environments,
    event_lifecycle,
    moodle_states_in_the_view,
    history_interleaves_both_streams,
    ten_thousand_participants,
    concurrent_adds_lose_nothing,
    answers_from_the_read_model_and_its_tail,
);
