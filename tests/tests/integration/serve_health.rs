//! Moodle's health as `serve` shows it (issue 14): the preflight runs at start-up and every
//! `OPENVLE_MOODLE_CHECK_INTERVAL_SECS`, is logged when its verdict changes, and is read in
//! `GET /api/v1/status` and `/metrics`; each Moodle effect and park has an `info` line with the
//! event id (and participant id); parked events are counted by code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use moodle_sim::{SimConfig, Simulator, TEMPLATE_COURSE_ID};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::binary::{free_port, Proc};
use support::drive::{serve_proc, Http, DEADLINE};

/// Polls `probe` (an `Option` expression, awaited afresh each time) until it is `Some`: the
/// engine's clock and the log decide how long that takes; DEADLINE only stops a hung run.
macro_rules! until {
    ($what:expr, $proc:expr, $probe:expr) => {{
        let started = Instant::now();
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{}: not seen; engine log:\n{}",
                $what,
                $proc.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

fn log_of(proc: &Proc) -> String {
    proc.log_tail(100_000)
}

#[tokio::test]
async fn serve_checks_moodle_at_start_up_and_says_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    let port = free_port();
    let flags = vec![
        "MOODLE_ENABLED=true".to_string(),
        format!("MOODLE_URL={}", sim.url()),
        format!("MOODLE_TOKEN={}", sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
    ];
    let db = format!("sqlite://{}", dir.path().join("health.db").display());
    let mut proc = serve_proc(&db, &flags, port, dir.path())
        .env("OPENVLE_LOG", "info")
        .env("OPENVLE_MOODLE_CHECK_INTERVAL_SECS", "1");
    proc.start();
    let http = Http::new(port);
    let health = until!(
        "the first preflight",
        proc,
        async {
            let (_, s) = http.get("/api/v1/status").await?;
            (!s["moodle"]["health"].is_null()).then(|| s["moodle"]["health"].clone())
        }
        .await
    );
    assert_eq!(health["ok"], true, "{health}");
    assert!(health["checked_at"].is_string());
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("openvle_moodle_up 1"), "{text}");
    assert!(text.contains("openvle_moodle_check_ok 1"), "{text}");
    assert!(log_of(&proc).contains("Moodle preflight ok"));

    let env = json!({"name": "Lab", "moodle_template_course_id": TEMPLATE_COURSE_ID});
    let (s, b) = http
        .call(Method::PUT, "/api/v1/environments/lab", Some(&env))
        .await
        .unwrap();
    assert!(s.is_success(), "{b}");
    let deploy = |id: &str| {
        json!({"id": id, "environment_id": "lab", "name": "Lab run", "participants": [
            {"id": "p1", "email": "p1@example.org", "first_name": "P", "last_name": "One", "role": "student"}
        ]})
    };
    let fine = uuid::Uuid::new_v4().to_string();
    let (s, b) = http
        .call(Method::POST, "/api/v1/events", Some(&deploy(&fine)))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    until!(
        "the first event in sync",
        proc,
        async {
            let (_, v) = http.get(&format!("/api/v1/events/{fine}")).await?;
            (v["moodle"]["state"] == "in_sync").then_some(())
        }
        .await
    );

    // The template is deleted in Moodle: the next deploy parks, and the preflight says so.
    assert!(sim.delete_course_directly(TEMPLATE_COURSE_ID));
    let broken = uuid::Uuid::new_v4().to_string();
    let (s, b) = http
        .call(Method::POST, "/api/v1/events", Some(&deploy(&broken)))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let status: Value = until!(
        "the park and the preflight's problem",
        proc,
        async {
            let (_, s) = http.get("/api/v1/status").await?;
            let parked = s["saga"]["parked"]
                .as_array()?
                .iter()
                .any(|p| p["event_id"] == broken.as_str());
            (parked && s["moodle"]["health"]["ok"] == false).then_some(s)
        }
        .await
    );
    let problems = status["moodle"]["health"]["problems"].to_string();
    assert!(
        problems.contains(&TEMPLATE_COURSE_ID.to_string()),
        "{problems}"
    );
    let text = until!(
        "the parked count by code",
        proc,
        async {
            let t = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            t.contains("openvle_moodle_parked{code=\"invalidcourseid\"} 1")
                .then_some(t)
        }
        .await
    );
    assert!(text.contains("openvle_moodle_check_ok 0"), "{text}");

    let log = log_of(&proc);
    assert!(log.contains("Moodle preflight found problems"), "{log}");
    // One info line per effect and per park, with the event id (and the participant's).
    let line = |needle: &str, event: &str| {
        log.lines()
            .find(|l| l.contains(needle) && l.contains(event))
            .unwrap_or_else(|| panic!("no line with {needle:?} for {event}:\n{log}"))
            .to_string()
    };
    assert!(line("moodle: enrolled", &fine).contains("p1"));
    assert!(line("moodle: account created", &fine).contains("p1"));
    assert!(line("duplicated from the template", &fine).contains("INFO"));
    assert!(line("parked:", &broken).contains("invalidcourseid"));
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file");
    proc.terminate(Duration::from_secs(20));
    sim.shutdown().await;
}
