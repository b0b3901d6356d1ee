//! `GET /api/v1/events` (paged, filtered by Moodle state, environment, status, time) and
//! `GET /api/v1/participants` (a person across events, with their Moodle account and enrolment),
//! read from the read models the projector keeps, on both stores (issue 14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moodle_sim::{SimConfig, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use reqwest::{Method, StatusCode};
use saga::{SagaConfig, Worker};
use serde_json::{json, Value};
use store::testing::Backend;
use support::real_moodle::client_for;
use support::{code, participant, ApiConfig, TestApp};

async fn get(app: &TestApp, path: &str) -> Value {
    let (s, body) = app.call(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {body}");
    body
}

fn ids(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn events_are_listed_by_page_and_filter_and_people_found_across_them() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
        let mut config = ApiConfig::default();
        config.moodle.enabled = true;
        config.moodle.url = Some(sim.url());
        config.moodle.token = Some(moodle::Secret::new(sim.token()));
        config.moodle.allow_insecure_http = true;
        config.moodle.course_category_id = Some(EVENTS_CATEGORY_ID);
        let Some(app) = TestApp::spawn_custom(backend, config, |s| s).await else {
            continue;
        };
        app.seed_environment("lab", TEMPLATE_COURSE_ID).await;
        app.seed_environment("gone", 987_654).await;
        let mut lab = Vec::new();
        for _ in 0..5 {
            lab.push(app.deploy("lab", 2).await);
        }
        let broken = app.deploy("gone", 1).await;
        // One person in two events, spelled with another case in the second.
        let shared = uuid::Uuid::new_v4().to_string();
        let mut body = support::deploy_body(&shared, "lab", 1);
        let mut ada = participant("ada", "student");
        ada["email"] = json!("Ada.Lovelace@Example.org");
        ada["username"] = json!("alovelace");
        ada["idnumber"] = json!("S-1815");
        body["participants"].as_array_mut().unwrap().push(ada);
        let (s, b) = app.post("/api/v1/events", &body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let (s, b) = app
            .post(
                &format!("/api/v1/events/{}/participants", lab[0]),
                &json!({"id": "ada-2", "email": "ada.lovelace@example.org", "first_name": "Ada",
                        "last_name": "L", "role": "instructor"}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let (s, b) = app
            .post(&format!("/api/v1/events/{}/end", lab[4]), &json!({}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let worker = Worker::new(
            app.store().clone(),
            Some(client_for(&sim.url(), &sim.token())),
            app.state.config().moodle.saga(),
            SagaConfig {
                poll_interval: Duration::from_millis(20),
                worker_id: "lists".into(),
                ..SagaConfig::default()
            },
        );
        worker.run_until_idle().await.unwrap();
        views::catch_up(app.store(), &app.state.config().moodle.saga())
            .await
            .unwrap();

        // Pages of 3 cover all 7 events, each once, in the order they last changed.
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = get(&app, &format!("/api/v1/events?limit=3&after={after}")).await;
            assert!(page["events"].as_array().unwrap().len() <= 3);
            seen.extend(ids(&page));
            match page["next"].as_i64() {
                Some(n) => after = n,
                None => break,
            }
        }
        let mut all: Vec<String> = lab
            .iter()
            .cloned()
            .chain([broken.clone(), shared.clone()])
            .collect();
        all.sort();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, all, "every event once");

        let failed = get(&app, "/api/v1/events?moodle_state=failed").await;
        assert_eq!(ids(&failed), vec![broken.clone()], "{failed}");
        assert_eq!(
            failed["events"][0]["last_error"], "invalidcourseid",
            "{failed}"
        );
        let gone = get(&app, "/api/v1/events?environment_id=gone").await;
        assert_eq!(ids(&gone), vec![broken.clone()]);
        let ended = get(&app, "/api/v1/events?status=ended&moodle_state=in_sync").await;
        assert_eq!(ids(&ended), vec![lab[4].clone()], "{ended}");
        let later = get(&app, "/api/v1/events?updated_since=2999-01-01T00:00:00Z").await;
        assert!(ids(&later).is_empty());
        let since = get(
            &app,
            "/api/v1/events?updated_since=2000-01-01T00:00:00Z&limit=500",
        )
        .await;
        assert_eq!(ids(&since).len(), 7);
        for (q, want) in [
            ("moodle_state=broken", "invalid_field"),
            ("status=gone", "invalid_field"),
            ("limit=0", "invalid_field"),
            ("limit=501", "invalid_field"),
            ("after=-1", "invalid_field"),
            ("updated_since=yesterday", "invalid_field"),
            ("colour=red", "invalid_request"),
        ] {
            let (s, b) = app
                .call(Method::GET, &format!("/api/v1/events?{q}"), None)
                .await;
            assert_eq!(code(&b), want, "{q}: {s} {b}");
        }

        // A person across events: by email (any case), username, idnumber.
        let found = get(&app, "/api/v1/participants?email=ADA.LOVELACE@example.ORG").await;
        let found = found["participants"].as_array().unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let in_shared = found
            .iter()
            .find(|p| p["event_id"] == shared.as_str())
            .unwrap();
        assert_eq!(in_shared["participant_id"], "ada");
        assert_eq!(in_shared["enrolment"], "enrolled", "{in_shared}");
        let account = in_shared["moodle_user_id"].as_i64().unwrap();
        let in_lab = found
            .iter()
            .find(|p| p["event_id"] == lab[0].as_str())
            .unwrap();
        assert_eq!(in_lab["role"], "instructor");
        assert_eq!(
            in_lab["moodle_user_id"].as_i64(),
            Some(account),
            "one Moodle account"
        );
        let by_name = get(&app, "/api/v1/participants?username=ALovelace").await;
        assert_eq!(by_name["participants"].as_array().unwrap().len(), 1);
        let by_number = get(&app, "/api/v1/participants?idnumber=S-1815").await;
        assert_eq!(by_number["participants"].as_array().unwrap().len(), 1);
        let none = get(&app, "/api/v1/participants?idnumber=s-1815").await;
        assert!(
            none["participants"].as_array().unwrap().is_empty(),
            "idnumbers are exact"
        );
        let wild = get(&app, "/api/v1/participants?email=%25").await;
        assert!(
            wild["participants"].as_array().unwrap().is_empty(),
            "no LIKE wildcards"
        );
        for q in ["", "email=a@b.c&username=x", "name=ada"] {
            let (s, b) = app
                .call(Method::GET, &format!("/api/v1/participants?{q}"), None)
                .await;
            assert_eq!(
                (s, code(&b)),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{q}"
            );
        }
        app.stop().await;
        sim.shutdown().await;
    }
}
