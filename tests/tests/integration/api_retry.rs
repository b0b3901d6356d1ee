//! `POST /api/v1/moodle/retry` (issue 14): every parked event, or those parked with one code,
//! resumed over HTTP as `openvle-moodle retry --all [--code X]` does; the status names the codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moodle_sim::{SimConfig, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use reqwest::{Method, StatusCode};
use saga::{SagaConfig, Worker};
use serde_json::json;
use support::control::Control;
use support::real_moodle::client_for;
use support::{code, ApiConfig, Backend, TestApp};

#[tokio::test]
async fn parked_events_are_resumed_by_code_over_http() {
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some(sim.url());
    config.moodle.token = Some(moodle::Secret::new(sim.token()));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(EVENTS_CATEGORY_ID);
    let control = Control::new();
    let installed = control.clone();
    let app = TestApp::spawn_custom(Backend::Sqlite, config, |s| s.with_saga(installed))
        .await
        .unwrap();
    let store = app.store().clone();
    control.bind(&store);
    // Recorded while Moodle was off: a template the simulator does not have.
    app.seed_environment("gone", 987_654).await;
    app.seed_environment("lab", TEMPLATE_COURSE_ID).await;
    let broken = [app.deploy("gone", 1).await, app.deploy("gone", 1).await];
    let fine = app.deploy("lab", 1).await;
    let worker = Worker::new(
        store.clone(),
        Some(client_for(&sim.url(), &sim.token())),
        app.state.config().moodle.saga(),
        SagaConfig {
            poll_interval: Duration::from_millis(20),
            worker_id: "retry".into(),
            ..SagaConfig::default()
        },
    );
    worker.run_until_idle().await.unwrap();
    let status = saga::status(&store).await.unwrap();
    assert_eq!(status.parked.len(), 2, "{status:?}");
    let parked_code = status.parked[0].codes[0].clone();
    assert!(status
        .parked
        .iter()
        .all(|p| p.codes == [parked_code.clone()]));
    assert!(!status.parked.iter().any(|p| p.event_id == fine));

    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/moodle/retry",
            Some(&json!({"code": "nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["resumed"], json!([]));
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/moodle/retry",
            Some(&json!({"colour": 1})),
        )
        .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/moodle/retry",
            Some(&json!({ "code": parked_code })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let mut resumed: Vec<String> = serde_json::from_value(body["resumed"].clone()).unwrap();
    resumed.sort();
    let mut want = broken.to_vec();
    want.sort();
    assert_eq!(resumed, want);
    let status = saga::status(&store).await.unwrap();
    assert!(status.parked.is_empty(), "resumed: {status:?}");
    // Still broken: the saga parks them again, with the same code.
    worker.run_until_idle().await.unwrap();
    let status = saga::status(&store).await.unwrap();
    assert_eq!(status.parked.len(), 2);
    let (s, body) = app.call(Method::POST, "/api/v1/moodle/retry", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["resumed"].as_array().unwrap().len(),
        2,
        "all, without a code"
    );
    app.stop().await;
    sim.shutdown().await;
}
