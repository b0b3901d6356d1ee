//! The identity rule at the door, through the API: while Moodle is on in username (idnumber)
//! mode, a deploy, an add or a PATCH leaving a participant without a username (idnumber) is
//! refused with 422 `username_required` (`idnumber_required`), naming MOODLE_USER_MATCH_FIELD and
//! the participant, and appends nothing; with Moodle off or in email mode nobody needs one.

use reqwest::StatusCode;
use serde_json::{json, Value};

use domain::event::{EventCommand, VleEvent};
use domain::participant::ParticipantInput;
use domain::settings::UserMatchField;
use store::CommandMeta;
use support::{both_backends, deploy_body, participant, ApiConfig, Backend, TestApp};

use super::{history_types, patch, refused, with};

/// Moodle switched on in `field` mode (pointed nowhere: commands never call Moodle).
fn moodle_on(field: UserMatchField) -> ApiConfig {
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some("http://127.0.0.1:9".into());
    config.moodle.token = Some(moodle::Secret::new("x"));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(2);
    config.moodle.user_match_field = field;
    config
}

/// Deploy, add and PATCH in `field` mode with Moodle on: a participant lacking the field's value
/// is refused by each with `want`, naming the setting and the participant; one that has it passes.
async fn the_match_field_is_required(backend: Backend, field: UserMatchField, want: &str) {
    let Some(app) = TestApp::spawn_with(backend, moodle_on(field)).await else {
        return;
    };
    let name = field.as_str();
    app.environment("env", None).await;
    let keyed = |p: Value, v: &str| with(p, name, v);

    // Deploy: the second participant lacks the value.
    let event = uuid::Uuid::new_v4().to_string();
    let mut body = deploy_body(&event, "env", 3);
    body["participants"][0][name] = json!("k0");
    body["participants"][2][name] = json!("k2");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let answer = refused(&app, app.post("/api/v1/events", &body), unprocessable, want).await;
    let error = &answer["error"];
    assert_eq!(error["details"]["participant_id"], "p00001", "{error}");
    assert_eq!(error["details"]["field"], name);
    assert_eq!(error["details"]["setting"], "MOODLE_USER_MATCH_FIELD");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("MOODLE_USER_MATCH_FIELD"), "{message}");
    assert!(message.contains("p00001"), "{message}");
    let (status, _) = app.get(&format!("/api/v1/events/{event}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused deploy left no event"
    );

    // With the value: deployed.
    body["participants"][1][name] = json!("k1");
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["event"]["participants"][1][name], "k1");

    // Add: without the value refused, with it accepted.
    let participants = format!("/api/v1/events/{event}/participants");
    let bare = participant("late", "student");
    let answer = refused(&app, app.post(&participants, &bare), unprocessable, want).await;
    assert_eq!(answer["error"]["details"]["participant_id"], "late");
    let late = keyed(participant("late", "student"), "k3");
    let (status, answer) = app.post(&participants, &late).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    // PATCH: clearing the value refused; other changes (and a new value) accepted.
    let path = format!("{participants}/p00001");
    let clear = json!({ name: null });
    let answer = refused(&app, patch(&app, &path, &clear), unprocessable, want).await;
    assert_eq!(answer["error"]["details"]["participant_id"], "p00001");
    let (status, answer) = patch(&app, &path, &json!({"role": "instructor", name: "k9"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["participant"][name], "k9");
    // Domain refusals keep their own codes.
    let bad_email = json!({ name: null, "email": "bad" });
    refused(
        &app,
        patch(&app, &path, &bad_email),
        unprocessable,
        "invalid_email",
    )
    .await;
    let ghost = format!("{participants}/ghost");
    refused(
        &app,
        patch(&app, &ghost, &clear),
        StatusCode::NOT_FOUND,
        "participant_not_found",
    )
    .await;

    // One recorded without the value (before Moodle was on: straight into the log here) is
    // refused any PATCH until it carries the value.
    let old: ParticipantInput = serde_json::from_value(participant("old", "student")).unwrap();
    app.store()
        .execute::<VleEvent>(
            &event,
            EventCommand::AddParticipant { participant: old },
            &CommandMeta::new("test"),
        )
        .await
        .expect("recorded without the value");
    let old = format!("{participants}/old");
    let role = json!({"role": "instructor"});
    refused(&app, patch(&app, &old, &role), unprocessable, want).await;
    let (status, answer) = patch(&app, &old, &json!({ name: "k4" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    assert_eq!(
        history_types(&app, &event).await,
        [
            "Deployed",
            "ParticipantAdded",
            "ParticipantChanged",
            "ParticipantAdded",
            "ParticipantChanged"
        ]
    );
}

async fn username_required_while_moodle_is_on(backend: Backend) {
    the_match_field_is_required(backend, UserMatchField::Username, "username_required").await;
}

async fn idnumber_required_while_moodle_is_on(backend: Backend) {
    the_match_field_is_required(backend, UserMatchField::Idnumber, "idnumber_required").await;
}

/// Moodle off (whatever the match field), or on in email mode: nobody needs a username or an
/// idnumber.
async fn no_match_value_needed_with_moodle_off_or_in_email_mode(backend: Backend) {
    let mut off = moodle_on(UserMatchField::Username);
    off.moodle.enabled = false;
    for config in [off, moodle_on(UserMatchField::Email)] {
        let enabled = config.moodle.enabled;
        let Some(app) = TestApp::spawn_with(backend, config).await else {
            return;
        };
        app.environment("env", None).await;
        let id = app.deploy("env", 2).await;
        let (status, body) = app
            .post(
                &format!("/api/v1/events/{id}/participants"),
                &participant("late", "student"),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "moodle {enabled}: {body}");
        let path = format!("/api/v1/events/{id}/participants/p00001");
        let (status, body) = patch(&app, &path, &json!({"username": "u1"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "moodle {enabled}: {body}");
        let (status, body) = patch(&app, &path, &json!({"username": null})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "moodle {enabled}: {body}");
        assert_eq!(body["positions"].as_array().unwrap().len(), 1);
        assert_eq!(
            history_types(&app, &id).await,
            [
                "Deployed",
                "ParticipantAdded",
                "ParticipantChanged",
                "ParticipantChanged"
            ]
        );
    }
}

both_backends!(
    username_required_while_moodle_is_on,
    idnumber_required_while_moodle_is_on,
    no_match_value_needed_with_moodle_off_or_in_email_mode,
);
