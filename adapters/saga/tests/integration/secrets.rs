//! The Moodle token never reaches the store: a Moodle answer that echoes the request (a plugin
//! or proxy quoting what it was sent) in a warning of a successful call, or in an exception,
//! leaves no trace of the token in any recorded event nor in what the client returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use domain::event::EventCommand;
use domain::moodle_sync::MoodleSync;
use moodle::CourseUpdate;
use moodle_sim::{ScriptedFault, SimConfig};
use saga::SagaSettings;

/// Distinctive, so that a match can only be the token.
const TOKEN: &str = "e40f1c9a5b7d2e3f8a6c0b1d9e7f5a3c";

/// Every form of the token a leak could take: plain and percent-encoded either case.
fn leaks(text: &str) -> bool {
    let upper: String = TOKEN.bytes().map(|b| format!("%{b:02X}")).collect();
    let lower: String = TOKEN.bytes().map(|b| format!("%{b:02x}")).collect();
    text.contains(TOKEN) || text.contains(&upper) || text.contains(&lower)
}

async fn env_with_token() -> Env {
    sqlite_env_with(SimConfig {
        token: TOKEN.into(),
        ..SimConfig::default()
    })
    .await
}

async fn parked_code(env: &Env, id: &str) -> Option<(String, String)> {
    let sync = env
        .store
        .load::<MoodleSync>(id)
        .await
        .unwrap()
        .map(|(s, _)| s)
        .unwrap_or_default();
    sync.parked.map(|(step, code, _)| (step, code))
}

fn echo(function: &str) -> (Option<&str>, ScriptedFault) {
    (
        Some(function),
        ScriptedFault::EchoWarning {
            warningcode: "nopermissions".into(),
        },
    )
}

#[tokio::test]
async fn a_warning_echoing_the_token_on_hide_and_delete_stores_no_token() {
    let env = env_with_token().await;
    assert_eq!(env.sim.token(), TOKEN);
    let settings = SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    };
    let w = env.worker(settings, "w1");
    env.environment("env1", Some(TEMPLATE)).await;
    for id in ["hide", "del"] {
        env.deploy(id, "env1", vec![person(&format!("{id}-a"), "student")])
            .await;
    }
    idle(&w).await;
    assert!(env.course("hide").unwrap().visible);

    // Hiding: the update answers 200 with a warning quoting the request.
    let (f, fault) = echo("core_course_update_courses");
    env.sim.push_fault(f, fault);
    env.event("hide", EventCommand::End).await;
    idle(&w).await;
    let (step, code) = parked_code(&env, "hide").await.expect("hide parked");
    assert_eq!(code, "nopermissions", "{step}");
    assert!(env.course("hide").unwrap().visible, "nothing applied");

    // Deleting: the same from core_course_delete_courses.
    let (f, fault) = echo("core_course_delete_courses");
    env.sim.push_fault(f, fault);
    env.event("del", EventCommand::Delete).await;
    idle(&w).await;
    let (step, code) = parked_code(&env, "del").await.expect("delete parked");
    assert_eq!(code, "nopermissions", "{step}");
    assert!(env.course("del").is_some(), "nothing deleted");

    // The message was recorded, with the token redacted.
    let rows = env.store.read_all(0, 100_000).await.unwrap();
    let all: String = rows
        .iter()
        .map(|r| format!("{} {} {}\n", r.event_type, r.payload, r.metadata))
        .collect();
    assert!(all.contains("[redacted]"), "the echo was recorded: {all}");
    assert!(
        all.contains("wsfunction=core_course_delete_courses"),
        "{all}"
    );
    assert!(!leaks(&all), "the token is in the store: {all}");
    let status = saga::status(&env.store).await.unwrap();
    let status = format!("{status:?}");
    assert!(status.contains("nopermissions"), "{status}");
    assert!(!leaks(&status), "{status}");
}

#[tokio::test]
async fn the_client_returns_no_token_in_warnings_or_errors() {
    let env = env_with_token().await;
    let course = env.sim.snapshot().courses.keys().copied().max().unwrap();

    let (f, fault) = echo("core_course_update_courses");
    env.sim.push_fault(f, fault);
    let warnings = env
        .client
        .update_courses(&[CourseUpdate {
            id: course,
            visible: Some(false),
            fullname: None,
            idnumber: None,
            ..Default::default()
        }])
        .await
        .unwrap();
    assert_eq!(warnings.len(), 1);
    let text = format!("{warnings:?} {}", warnings[0].message);
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!leaks(&text), "{text}");
    assert!(!leaks(warnings[0].item.as_deref().unwrap_or_default()));

    let (f, fault) = echo("core_course_delete_courses");
    env.sim.push_fault(f, fault);
    let warnings = env.client.delete_courses(&[course]).await.unwrap();
    let text = format!("{warnings:?}");
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(!leaks(&text), "{text}");
    assert!(
        env.sim.snapshot().courses.contains_key(&course),
        "nothing deleted"
    );

    // An exception quoting the token, for comparison: scrubbed too.
    env.sim.push_fault(
        Some("core_course_delete_courses"),
        ScriptedFault::Exception {
            exception: "moodle_exception".into(),
            errorcode: "nopermissions".into(),
            message: format!("refused wstoken={TOKEN}"),
        },
    );
    let e = env.client.delete_courses(&[course]).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!leaks(&text), "{text}");
}
