//! A participant's PATCH (a JSON merge patch): the changes it records, the no-op that records
//! nothing, every refusal (appending nothing), auth. The identity rule is in `identity`.

mod identity;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use support::{both_backends, code, participant, read, ApiConfig, Backend, TestApp};

const MERGE_PATCH: &str = "application/merge-patch+json";

/// A PATCH with a raw body and content type; the status, the JSON answer and whether it was a
/// replay.
async fn patch_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: &[u8],
    key: Option<&str>,
) -> (StatusCode, Value, bool) {
    let mut rb = app
        .request(Method::PATCH, path)
        .header("content-type", content_type)
        .body(body.to_vec());
    if let Some(k) = key {
        rb = rb.header("idempotency-key", k);
    }
    let resp = rb.send().await.expect("request");
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let (status, value) = read(resp).await;
    (status, value, replayed)
}

pub(super) async fn patch(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let (status, value, _) = patch_raw(app, path, MERGE_PATCH, &raw, None).await;
    (status, value)
}

/// Sends `request` and checks status and code of the refusal, and that the log did not move;
/// returns the error body.
pub(super) async fn refused(
    app: &TestApp,
    request: impl std::future::Future<Output = (StatusCode, Value)>,
    status: StatusCode,
    want: &str,
) -> Value {
    let head = app.head().await;
    let (got, body) = request.await;
    assert_eq!(got, status, "{body}");
    assert_eq!(code(&body), want, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    assert_eq!(
        app.head().await,
        head,
        "a refused {want} appended something"
    );
    body
}

/// [`patch_raw`] without the replay flag, for [`refused`].
async fn patch_as(
    app: &TestApp,
    path: &str,
    content_type: &str,
    raw: &[u8],
) -> (StatusCode, Value) {
    let (status, value, _) = patch_raw(app, path, content_type, raw, None).await;
    (status, value)
}

pub(super) fn with(mut p: Value, field: &str, value: &str) -> Value {
    p[field] = json!(value);
    p
}

/// The types of an event's history.
pub(super) async fn history_types(app: &TestApp, id: &str) -> Vec<String> {
    let (status, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn patch_changes_role_email_and_username(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let added = with(participant("u1", "student"), "username", "ada");
    let added = with(added, "idnumber", "S-1");
    let (status, body) = app
        .post(&format!("/api/v1/events/{id}/participants"), &added)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event"]["participants"][2]["idnumber"], "S-1");

    // Role: the merge-patch content type.
    let path = format!("/api/v1/events/{id}/participants/p00001");
    let (status, body) = patch(&app, &path, &json!({"role": "instructor"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["participant"]["id"], "p00001");
    assert_eq!(body["participant"]["role"], "instructor");
    assert_eq!(body["event"]["participants"][1]["role"], "instructor");
    let positions = body["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].as_i64().unwrap(), app.head().await);

    // Email: plain application/json works too; the other fields are kept.
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"email": " new@uni.example "})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["participant"]["email"], "new@uni.example");
    assert_eq!(body["participant"]["role"], "instructor");
    assert_eq!(body["participant"]["last_name"], "Last p00001");

    // Username cleared with null, idnumber replaced.
    let path = format!("/api/v1/events/{id}/participants/u1");
    let (status, body) = patch(&app, &path, &json!({"username": null, "idnumber": "S-2"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["participant"].get("username").is_none(), "{body}");
    assert_eq!(body["participant"]["idnumber"], "S-2");
    let (_, view) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(view["participants"], body["event"]["participants"]);

    assert_eq!(
        history_types(&app, &id).await,
        [
            "Deployed",
            "ParticipantAdded",
            "ParticipantChanged",
            "ParticipantChanged",
            "ParticipantChanged"
        ]
    );
    let (_, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    let last = &history[4]["payload"]["ParticipantChanged"];
    assert_eq!(last["before"]["username"], "ada", "{last}");
    assert!(last["after"].get("username").is_none(), "{last}");
    assert_eq!(last["after"]["idnumber"], "S-2");
}

async fn a_patch_that_changes_nothing_appends_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let path = format!("/api/v1/events/{id}/participants/p00001");
    let head = app.head().await;
    for same in [
        json!({}),
        json!({"role": "student", "first_name": "First"}),
        json!({"username": null, "idnumber": null}),
    ] {
        let (status, body) = patch(&app, &path, &same).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{same}: {body}");
        assert_eq!(body["positions"], json!([]), "{same}");
        assert_eq!(body["participant"]["role"], "student");
    }
    assert_eq!(app.head().await, head);
    assert_eq!(history_types(&app, &id).await, ["Deployed"]);

    // Under an Idempotency-Key: a repeat is the first answer, appending nothing.
    let raw = br#"{"role":"instructor"}"#;
    let (status, first, replayed) = patch_raw(&app, &path, MERGE_PATCH, raw, Some("k1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert!(!replayed);
    let head = app.head().await;
    let (status, again, replayed) = patch_raw(&app, &path, MERGE_PATCH, raw, Some("k1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(replayed);
    assert_eq!(again, first);
    assert_eq!(app.head().await, head);
    let (status, other, _) = patch_raw(&app, &path, MERGE_PATCH, b"{}", Some("k1")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&other), "idempotency_key_reused");
    assert_eq!(app.head().await, head);
}

async fn patch_errors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 3).await;
    let path = format!("/api/v1/events/{id}/participants/p00001");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let bad = StatusCode::BAD_REQUEST;
    for (body, want) in [
        (json!({"email": "nope"}), "invalid_email"),
        (json!({"email": "jöran@uni.example"}), "invalid_email"),
        (json!({"role": "teacher"}), "unknown_role"),
        (json!({"first_name": "  "}), "invalid_field"),
        (json!({"username": ""}), "invalid_field"),
        (json!({"idnumber": "x".repeat(256)}), "invalid_field"),
        (json!({"role": null}), "invalid_field"),
        (json!({"email": null}), "invalid_field"),
        (json!({"email": "P00002@Example.org"}), "duplicate_email"),
    ] {
        refused(&app, patch(&app, &path, &body), unprocessable, want).await;
    }
    let dup = json!({"email": "p00002@example.org"});
    let dup = refused(
        &app,
        patch(&app, &path, &dup),
        unprocessable,
        "duplicate_email",
    )
    .await;
    assert_eq!(dup["error"]["details"]["email"], "p00002@example.org");
    let null_role = json!({"role": null});
    let null_role = refused(
        &app,
        patch(&app, &path, &null_role),
        unprocessable,
        "invalid_field",
    )
    .await;
    assert_eq!(null_role["error"]["details"]["field"], "participant.role");

    // Malformed or unknown fields: 400, the id included (it never changes).
    for (raw, want) in [
        (r#"{"id": "p9"}"#, "invalid_request"),
        (r#"{"colour": "red"}"#, "invalid_request"),
        (r#"{"role": 5}"#, "invalid_request"),
        (r#"["role"]"#, "invalid_request"),
        ("{", "malformed_json"),
        ("", "malformed_json"),
    ] {
        let request = patch_as(&app, &path, MERGE_PATCH, raw.as_bytes());
        refused(&app, request, bad, want).await;
    }
    let request = patch_as(&app, &path, "text/plain", b"{}");
    refused(
        &app,
        request,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // Unknown participant, unknown event, not a UUID.
    let role = json!({"role": "instructor"});
    let ghost = format!("/api/v1/events/{id}/participants/ghost");
    let missing = refused(
        &app,
        patch(&app, &ghost, &role),
        StatusCode::NOT_FOUND,
        "participant_not_found",
    )
    .await;
    assert_eq!(missing["error"]["details"]["participant_id"], "ghost");
    let other = format!("/api/v1/events/{}/participants/p1", uuid::Uuid::new_v4());
    refused(
        &app,
        patch(&app, &other, &role),
        StatusCode::NOT_FOUND,
        "event_not_found",
    )
    .await;
    let not_uuid = "/api/v1/events/nope/participants/p1";
    refused(&app, patch(&app, not_uuid, &role), bad, "invalid_uuid").await;

    // Ended, then deleted.
    let (status, _) = app
        .call(Method::POST, &format!("/api/v1/events/{id}/end"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    refused(
        &app,
        patch(&app, &path, &role),
        StatusCode::CONFLICT,
        "event_ended",
    )
    .await;
    let (status, _) = app.delete(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    refused(
        &app,
        patch(&app, &path, &role),
        StatusCode::CONFLICT,
        "event_deleted",
    )
    .await;
    assert!(!history_types(&app, &id)
        .await
        .iter()
        .any(|t| t == "ParticipantChanged"));
}

async fn only_the_writer_may_patch(backend: Backend) {
    let config = ApiConfig {
        writer_token: Some(support::Token::new("writer-token-0123456789")),
        audit_token: Some(support::Token::new("auditor-token-0123456789")),
        ..ApiConfig::default()
    };
    let Some(app) = TestApp::spawn_with(backend, config).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let path = format!("/api/v1/events/{id}/participants/p00001");
    let head = app.head().await;
    for (token, status, want) in [
        (
            Some("auditor-token-0123456789"),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (Some("wrong"), StatusCode::UNAUTHORIZED, "unauthorized"),
    ] {
        let mut rb = app
            .client
            .patch(app.url(&path))
            .header("content-type", MERGE_PATCH)
            .body(r#"{"role":"instructor"}"#);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let (got, body) = read(rb.send().await.unwrap()).await;
        assert_eq!(got, status, "{token:?}: {body}");
        assert_eq!(code(&body), want);
    }
    assert_eq!(app.head().await, head);
    // The writer (the helpers' token) may; the actor recorded is its role.
    let (status, body) = patch(&app, &path, &json!({"role": "instructor"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    assert_eq!(history[1]["metadata"]["actor"], "writer");
}

both_backends!(
    patch_changes_role_email_and_username,
    a_patch_that_changes_nothing_appends_nothing,
    patch_errors,
    only_the_writer_may_patch,
);
