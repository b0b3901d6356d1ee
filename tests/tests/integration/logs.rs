//! What the real `openvle-moodle serve` writes to a log file (issue 14): a failed Moodle call's
//! line names the OpenVLE event and the attempt it belongs to, and a file gets no colour codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moodle_sim::{ScriptedFault, SimConfig, Simulator, TEMPLATE_COURSE_ID};
use serde_json::json;
use support::binary::free_port;
use support::drive::serve_proc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_calls_line_names_its_event_and_a_file_gets_no_colours() {
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    // The first duplication fails (transient: retried), so the worker logs a failed call.
    sim.push_fault(
        Some("core_course_duplicate_course"),
        ScriptedFault::Exception {
            exception: "moodle_exception".into(),
            errorcode: "ex_unabletolock".into(),
            message: "Unable to obtain lock".into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}", dir.path().join("logs.db").display());
    let moodle = [
        "MOODLE_ENABLED=true".to_string(),
        format!("MOODLE_URL={}", sim.url()),
        format!("MOODLE_TOKEN={}", sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
    ];
    let mut proc = serve_proc(&db, &moodle, port, dir.path());
    proc.start();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve never answered: {}", proc.log_tail(30));
    let env = json!({"name": "Logs", "moodle_template_course_id": TEMPLATE_COURSE_ID});
    let r = http
        .put(format!("{base}/api/v1/environments/env"))
        .json(&env)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = uuid::Uuid::new_v4().to_string();
    let deploy = json!({"id": id, "environment_id": "env", "name": "Logged", "participants": []});
    let r = http
        .post(format!("{base}/api/v1/events"))
        .json(&deploy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let log_path = dir.path().join("engine.log");
    let mut line = None;
    for _ in 0..600 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        line = log
            .lines()
            .find(|l| l.contains("moodle call failed"))
            .map(str::to_string);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no failed call logged: {}", proc.log_tail(30)));
    assert!(
        line.contains(&format!("event={id}")),
        "{line}\n{}",
        proc.log_tail(20)
    );
    assert!(line.contains("attempt=1"), "{line}");
    assert!(line.contains("core_course_duplicate_course"), "{line}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
    proc.kill();
    sim.shutdown().await;
}
