//! Recovery over HTTP alone (issue 14): `GET /api/v1/status` lists every parked event and
//! participant with its code, reason and fix; a deploy parked on a wrong template is pointed at
//! the right one (`PATCH moodle_template_course_id`); one parked participant is retried alone;
//! deleting or ending a parked event goes on with what still makes sense. On both stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use moodle_sim::{SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use projections::saga::UsernameCollision;
use reqwest::{Method, StatusCode};
use saga::{SagaConfig, Worker};
use serde_json::{json, Value};
use store::testing::Backend;
use support::control::Control;
use support::real_moodle::client_for;
use support::{code, ApiConfig, TestApp};

/// A template the simulator does not have.
const GONE: i64 = 987_654;

struct Rig {
    app: TestApp,
    sim: SimHandle,
    worker: Worker,
}

impl Rig {
    async fn new(backend: Backend) -> Option<Rig> {
        let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
        let mut config = ApiConfig::default();
        config.moodle.enabled = true;
        config.moodle.url = Some(sim.url());
        config.moodle.token = Some(moodle::Secret::new(sim.token()));
        config.moodle.allow_insecure_http = true;
        config.moodle.course_category_id = Some(EVENTS_CATEGORY_ID);
        config.moodle.delete_course_on_event_delete = true;
        // A username another account holds parks the participant.
        config.moodle.username_collision = UsernameCollision::Park;
        let control = Control::new();
        let installed: Arc<dyn api::SagaControl> = control.clone();
        let app = TestApp::spawn_custom(backend, config, |s| s.with_saga(installed)).await?;
        control.bind(app.store());
        let settings = app.state.config().moodle.saga();
        let worker = Worker::new(
            app.store().clone(),
            Some(client_for(&sim.url(), &sim.token())),
            settings,
            SagaConfig {
                poll_interval: Duration::from_millis(20),
                worker_id: "recovery".into(),
                ..SagaConfig::default()
            },
        );
        app.seed_environment("gone", GONE).await;
        app.seed_environment("lab", TEMPLATE_COURSE_ID).await;
        Some(Rig { app, sim, worker })
    }

    async fn settle(&self) {
        self.worker.run_until_idle().await.unwrap();
    }

    async fn status(&self) -> Value {
        let (s, body) = self.app.call(Method::GET, "/api/v1/status", None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    /// The status's entry for `event` (None: not parked).
    async fn parked(&self, event: &str) -> Option<Value> {
        let status = self.status().await;
        status["saga"]["parked"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["event_id"] == event)
            .cloned()
    }

    async fn moodle_state(&self, event: &str) -> Value {
        let (s, body) = self
            .app
            .call(Method::GET, &format!("/api/v1/events/{event}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["moodle"].clone()
    }

    async fn patch(&self, event: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .call(
                Method::PATCH,
                &format!("/api/v1/events/{event}"),
                Some(&body),
            )
            .await
    }

    async fn retry(&self, body: Value) -> (StatusCode, Value) {
        self.app
            .call(Method::POST, "/api/v1/moodle/retry", Some(&body))
            .await
    }

    async fn stop(self) {
        self.app.stop().await;
        self.sim.shutdown().await;
    }
}

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

#[tokio::test]
async fn a_wrong_template_is_corrected_and_one_participant_retried_over_http() {
    for backend in BACKENDS {
        let Some(rig) = Rig::new(backend).await else {
            continue;
        };
        // Someone else already holds the username p00001's new account would get.
        rig.sim
            .create_user_directly("p00001", "stranger@example.org", "Some", "One");
        let wrong = rig.app.deploy("gone", 2).await;
        let fine = rig.app.deploy("lab", 2).await;
        rig.settle().await;

        let status = rig.status().await;
        let a = rig.parked(&wrong).await.expect("the wrong template parks");
        let park_code = a["park"]["code"].as_str().unwrap().to_string();
        assert!(a["saga_parked"].as_bool().unwrap(), "{a}");
        assert!(
            a["park"]["fix"]
                .as_str()
                .unwrap()
                .contains("moodle_template_course_id")
                || a["park"]["fix"].as_str().unwrap().contains("moodle check"),
            "{a}"
        );
        let b = rig.parked(&fine).await.expect("a parked participant");
        assert!(b["park"].is_null(), "{b}");
        assert_eq!(b["participants"][0]["participant_id"], "p00001", "{b}");
        assert_eq!(b["participants"][0]["code"], "username_taken", "{b}");
        assert!(b["participants"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("MOODLE_USERNAME_COLLISION"));
        assert_eq!(status["saga"]["parked_by_code"][&park_code], 1, "{status}");
        assert_eq!(status["saga"]["parked_by_code"]["username_taken"], 1);
        let last = &status["saga"]["last_error"];
        if last["event_id"] == wrong.as_str() {
            // The attempt the record counted, as the log says (not the claim's count).
            assert!(last["attempts"].as_i64().unwrap() >= 1, "{status}");
        }

        // A template Moodle does not have either: refused, nothing appended.
        let head = rig.app.store().head().await.unwrap();
        let (s, body) = rig
            .patch(&wrong, json!({"moodle_template_course_id": 555_555}))
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_template_course"),
            "{body}"
        );
        let (s, body) = rig
            .patch(&wrong, json!({"moodle_template_course_id": null}))
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
        );
        // An event that has its course cannot change template.
        let (s, body) = rig
            .patch(
                &fine,
                json!({"moodle_template_course_id": TEMPLATE_COURSE_ID + 1}),
            )
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::CONFLICT, "course_already_made"),
            "{body}"
        );
        assert_eq!(rig.app.store().head().await.unwrap(), head);

        // The right template: the park lifts by itself, the course is made.
        let (s, body) = rig
            .patch(
                &wrong,
                json!({"moodle_template_course_id": TEMPLATE_COURSE_ID}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        rig.settle().await;
        let m = rig.moodle_state(&wrong).await;
        assert!(m["course_id"].as_i64().is_some(), "{m}");
        let a = rig.parked(&wrong).await.expect("p00001 parks here too");
        assert!(a["park"].is_null(), "the saga's own park is lifted: {a}");

        // The stranger's account is renamed in Moodle; one participant of one event is retried.
        rig.sim.with_state(|s| {
            for u in s.users.values_mut() {
                if u.username == "p00001" {
                    u.username = "stranger".into();
                }
            }
        });
        let (s, body) = rig
            .retry(json!({"event_id": fine, "participant_id": "nobody"}))
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::NOT_FOUND, "participant_not_found")
        );
        let (s, body) = rig.retry(json!({"participant_id": "p00001"})).await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
        );
        let (s, body) = rig
            .retry(json!({"event_id": fine, "participant_id": "p00001"}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["resumed"], json!(["p00001"]), "{body}");
        rig.settle().await;
        assert!(
            rig.parked(&fine).await.is_none(),
            "retried alone and enrolled"
        );
        assert_eq!(rig.moodle_state(&fine).await["state"], "in_sync");
        // The other event's park of the same person was not touched by that retry.
        let a = rig
            .parked(&wrong)
            .await
            .expect("still parked in the other event");
        assert_eq!(a["participants"][0]["participant_id"], "p00001");
        let (s, body) = rig.retry(json!({"event_id": wrong})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["resumed"], json!([wrong]));
        rig.settle().await;
        assert_eq!(rig.moodle_state(&wrong).await["state"], "in_sync");
        assert!(rig.status().await["saga"]["parked"]
            .as_array()
            .unwrap()
            .is_empty());
        rig.stop().await;
    }
}

#[tokio::test]
async fn deleting_or_ending_a_parked_event_goes_on() {
    for backend in BACKENDS {
        let Some(rig) = Rig::new(backend).await else {
            continue;
        };
        let deleted = rig.app.deploy("gone", 2).await;
        let ended = rig.app.deploy("gone", 2).await;
        rig.settle().await;
        assert!(rig.parked(&deleted).await.is_some());
        assert!(rig.parked(&ended).await.is_some());
        let failures = |e: &str| {
            let store = rig.app.store().clone();
            let e = e.to_string();
            async move {
                store
                    .read_event_history(&e)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| r.event_type == "StepFailed")
                    .count()
            }
        };
        let before = failures(&ended).await;

        // Deleted: there is no course to make any more; a look for one a lost answer may have
        // made, and it is done.
        let (s, body) = rig.app.delete(&format!("/api/v1/events/{deleted}")).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        // Ended: its course is still to be made (hidden, for the teachers): tried again, and
        // parked again while the template is wrong...
        let (s, body) = rig
            .app
            .post(&format!("/api/v1/events/{ended}/end"), &json!({}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        rig.settle().await;
        assert!(rig.parked(&deleted).await.is_none(), "the delete went on");
        assert_eq!(rig.moodle_state(&deleted).await["state"], "in_sync");
        assert!(failures(&ended).await > before, "the end tried again");
        assert!(rig.parked(&ended).await.is_some());
        // ... until it is corrected: an ended event takes a template change alone.
        let (s, body) = rig
            .patch(
                &ended,
                json!({"moodle_template_course_id": TEMPLATE_COURSE_ID}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        rig.settle().await;
        let m = rig.moodle_state(&ended).await;
        assert_eq!(m["state"], "in_sync", "{m}");
        assert_eq!(
            m["course_visible"], false,
            "an ended event's course is hidden"
        );
        rig.stop().await;
    }
}
