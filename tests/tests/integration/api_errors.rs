//! Every error the API answers: the status, the stable code, JSON always, and nothing appended.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use support::{both_backends, code, deploy_body, participant, read, Backend, TestApp};

/// Sends a raw request and checks status, code and that the log did not move.
async fn expect_error(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
    status: StatusCode,
    expected_code: &str,
) -> Value {
    let head = app.head().await;
    // An oversized body is refused before it is read; the server may then close the
    // connection while the client is still writing, and the client sees a broken connection
    // instead of the 413. Such a send is tried again (the answer is what is asserted).
    let mut attempt = 0;
    let resp = loop {
        let mut rb = app.request(method.clone(), path);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        if let Some(b) = &body {
            rb = rb.body(b.clone());
        }
        match rb.send().await {
            Ok(resp) => break resp,
            Err(e) if attempt < 10 && e.is_request() => attempt += 1,
            Err(e) => panic!("request: {e:?}"),
        }
    };
    let content = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (got, value) = read(resp).await;
    assert_eq!(got, status, "{method} {path}: {value}");
    assert!(
        content.starts_with("application/json"),
        "{method} {path}: {content}"
    );
    assert_eq!(code(&value), expected_code, "{method} {path}: {value}");
    assert!(value["error"]["message"].is_string(), "{value}");
    assert!(value["error"]["details"].is_object(), "{value}");
    assert_eq!(app.head().await, head, "{method} {path} appended something");
    value
}

fn j(v: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).unwrap())
}

const JSON: Option<&str> = Some("application/json");

async fn bad_requests(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let events = "/api/v1/events";
    let participants = format!("/api/v1/events/{id}/participants");
    let bad = StatusCode::BAD_REQUEST;

    // Malformed JSON.
    for raw in ["{", "nope", "", "{\"id\": }"] {
        expect_error(
            &app,
            Method::POST,
            events,
            JSON,
            Some(raw.into()),
            bad,
            "malformed_json",
        )
        .await;
    }
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        Some(b"[".to_vec()),
        bad,
        "malformed_json",
    )
    .await;

    // Unknown, missing and mistyped fields.
    let mut unknown = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1);
    unknown["colour"] = json!("red");
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&unknown),
        bad,
        "invalid_request",
    )
    .await;
    let mut unknown_in_participant = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1);
    unknown_in_participant["participants"][0]["age"] = json!(3);
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&unknown_in_participant),
        bad,
        "invalid_request",
    )
    .await;
    let missing = json!({"id": uuid::Uuid::new_v4().to_string(), "environment_id": "env"});
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&missing),
        bad,
        "invalid_request",
    )
    .await;
    let mistyped =
        json!({"id": uuid::Uuid::new_v4().to_string(), "environment_id": "env", "name": 7});
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&mistyped),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&json!([1, 2])),
        bad,
        "invalid_request",
    )
    .await;
    let mut no_email = participant("x", "student");
    no_email.as_object_mut().unwrap().remove("email");
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&no_email),
        bad,
        "invalid_request",
    )
    .await;
    let mut role_number = participant("x", "student");
    role_number["role"] = json!(5);
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&role_number),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        &app,
        Method::PUT,
        "/api/v1/environments/e2",
        JSON,
        j(&json!({"name": "x", "moodle_template_course_id": "42"})),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        &app,
        Method::PUT,
        "/api/v1/environments/e2",
        JSON,
        j(&json!({"name": "x", "extra": true})),
        bad,
        "invalid_request",
    )
    .await;

    // Invalid UUIDs, in the body and in paths.
    let not_uuid = deploy_body("not-a-uuid", "env", 1);
    expect_error(
        &app,
        Method::POST,
        events,
        JSON,
        j(&not_uuid),
        bad,
        "invalid_uuid",
    )
    .await;
    expect_error(
        &app,
        Method::GET,
        "/api/v1/events/123",
        None,
        None,
        bad,
        "invalid_uuid",
    )
    .await;
    expect_error(
        &app,
        Method::GET,
        "/api/v1/events/123/history",
        None,
        None,
        bad,
        "invalid_uuid",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events/123/end",
        None,
        None,
        bad,
        "invalid_uuid",
    )
    .await;
    expect_error(
        &app,
        Method::DELETE,
        "/api/v1/events/123",
        None,
        None,
        bad,
        "invalid_uuid",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events/123/participants",
        JSON,
        j(&participant("x", "student")),
        bad,
        "invalid_uuid",
    )
    .await;

    // Bad Idempotency-Key.
    let head = app.head().await;
    let resp = app
        .request(Method::POST, &format!("/api/v1/events/{id}/end"))
        .header("idempotency-key", "has space")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, bad);
    assert_eq!(code(&body), "invalid_idempotency_key");
    assert_eq!(app.head().await, head);
}

async fn sizes_and_media_types(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 1).await;
    let participants = format!("/api/v1/events/{id}/participants");

    // Over 1 MiB on an ordinary route.
    let mut big = participant("big", "student");
    big["first_name"] = json!("x".repeat(1024 * 1024 + 10));
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    expect_error(
        &app,
        Method::PUT,
        "/api/v1/environments/huge",
        JSON,
        j(&json!({"name": "y".repeat(2 * 1024 * 1024)})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Over 16 MiB on a deploy.
    let mut huge = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1);
    huge["name"] = json!("z".repeat(17 * 1024 * 1024));
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    // Not JSON.
    let p = j(&participant("x", "student"));
    expect_error(
        &app,
        Method::POST,
        &participants,
        Some("text/plain"),
        p.clone(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        &participants,
        None,
        p.clone(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        Some("application/x-www-form-urlencoded"),
        Some(b"id=1".to_vec()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // application/json with parameters is fine.
    let resp = app
        .request(Method::POST, &participants)
        .header("content-type", "application/json; charset=utf-8")
        .body(p.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

async fn unknown_ids_routes_and_methods(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let ghost = uuid::Uuid::new_v4().to_string();
    let nf = StatusCode::NOT_FOUND;

    expect_error(
        &app,
        Method::GET,
        &format!("/api/v1/events/{ghost}"),
        None,
        None,
        nf,
        "event_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::GET,
        &format!("/api/v1/events/{ghost}/history"),
        None,
        None,
        nf,
        "event_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        &format!("/api/v1/events/{ghost}/end"),
        None,
        None,
        nf,
        "event_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::DELETE,
        &format!("/api/v1/events/{ghost}"),
        None,
        None,
        nf,
        "event_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::DELETE,
        &format!("/api/v1/events/{ghost}/participants/p00000"),
        None,
        None,
        nf,
        "event_not_found",
    )
    .await;
    let v = expect_error(
        &app,
        Method::POST,
        &format!("/api/v1/events/{ghost}/participants"),
        JSON,
        j(&participant("x", "student")),
        nf,
        "event_not_found",
    )
    .await;
    assert_eq!(v["error"]["details"]["id"], ghost.as_str());
    expect_error(
        &app,
        Method::GET,
        "/api/v1/environments/nope",
        None,
        None,
        nf,
        "environment_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&deploy_body(&uuid::Uuid::new_v4().to_string(), "nope", 1)),
        nf,
        "environment_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::DELETE,
        &format!("/api/v1/events/{id}/participants/nobody"),
        None,
        None,
        nf,
        "participant_not_found",
    )
    .await;
    expect_error(
        &app,
        Method::GET,
        "/api/v1/nothing-here",
        None,
        None,
        nf,
        "not_found",
    )
    .await;
    expect_error(&app, Method::GET, "/", None, None, nf, "not_found").await;
    expect_error(
        &app,
        Method::POST,
        "/api/v1/moodle/nothing-here",
        None,
        None,
        nf,
        "not_found",
    )
    .await;
    // A Moodle route while the integration is off: 404 too, saying why.
    expect_error(
        &app,
        Method::POST,
        "/api/v1/moodle/retry",
        None,
        None,
        nf,
        "moodle_disabled",
    )
    .await;

    // Wrong methods: JSON 405 that keeps the Allow header.
    let v = expect_error(
        &app,
        Method::PATCH,
        "/api/v1/events",
        JSON,
        j(&json!({})),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(v.is_object());
    let resp = app
        .request(Method::PUT, &format!("/api/v1/events/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("allow").is_some());
    expect_error(
        &app,
        Method::POST,
        "/api/v1/audit",
        None,
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

async fn rule_refusals_and_conflicts(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let participants = format!("/api/v1/events/{id}/participants");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let conflict = StatusCode::CONFLICT;

    let mut bad_email = participant("x", "student");
    bad_email["email"] = json!("not an email");
    let v = expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&bad_email),
        unprocessable,
        "invalid_email",
    )
    .await;
    assert_eq!(v["error"]["details"]["email"], "not an email");
    let bad_role = participant("x", "teacher");
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&bad_role),
        unprocessable,
        "unknown_role",
    )
    .await;
    let mut blank = participant("x", "student");
    blank["first_name"] = json!("  ");
    let v = expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&blank),
        unprocessable,
        "invalid_field",
    )
    .await;
    assert_eq!(v["error"]["details"]["field"], "participant.first_name");
    let mut same_email = participant("x", "student");
    same_email["email"] = json!("p00001@example.org");
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&same_email),
        unprocessable,
        "duplicate_email",
    )
    .await;

    let mut dup = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 3);
    dup["participants"][2] = dup["participants"][1].clone();
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&dup),
        unprocessable,
        "duplicate_participant",
    )
    .await;
    let mut one_bad = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 5);
    one_bad["participants"][4]["role"] = json!("admin");
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&one_bad),
        unprocessable,
        "unknown_role",
    )
    .await;
    let mut blank_name = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1);
    blank_name["name"] = json!("");
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&blank_name),
        unprocessable,
        "invalid_field",
    )
    .await;
    expect_error(
        &app,
        Method::PUT,
        "/api/v1/environments/e1",
        JSON,
        j(&json!({"name": "x", "moodle_template_course_id": 1})),
        unprocessable,
        "invalid_field",
    )
    .await;

    // Conflicts with the current state.
    expect_error(
        &app,
        Method::POST,
        "/api/v1/events",
        JSON,
        j(&deploy_body(&id, "env", 1)),
        conflict,
        "event_already_deployed",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&participant("p00001", "student")),
        conflict,
        "participant_exists",
    )
    .await;
    let (status, _) = app
        .call(Method::POST, &format!("/api/v1/events/{id}/end"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&participant("y", "student")),
        conflict,
        "event_ended",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        &format!("/api/v1/events/{id}/end"),
        None,
        None,
        conflict,
        "event_ended",
    )
    .await;
    expect_error(
        &app,
        Method::DELETE,
        &format!("/api/v1/events/{id}/participants/p00000"),
        None,
        None,
        conflict,
        "event_ended",
    )
    .await;
    let (status, _) = app.delete(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    expect_error(
        &app,
        Method::DELETE,
        &format!("/api/v1/events/{id}"),
        None,
        None,
        conflict,
        "event_deleted",
    )
    .await;
    expect_error(
        &app,
        Method::POST,
        &participants,
        JSON,
        j(&participant("z", "student")),
        conflict,
        "event_deleted",
    )
    .await;
}

/// An email Moodle's `validate_email` refuses (it is ASCII only and wants a dotted domain) is
/// refused with 422 `invalid_email`, whether Moodle is on or not, in a deploy (the whole deploy:
/// nothing is appended) as in an addition: it would otherwise reach a Moodle batch that Moodle
/// refuses as a whole.
async fn emails_moodle_refuses(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let participants = format!("/api/v1/events/{id}/participants");
    for email in [
        "jöran@uni.example",
        "ada@bücher.example",
        "ada@localhost",
        "ada@x.123",
    ] {
        let mut p = participant("x", "student");
        p["email"] = json!(email);
        let v = expect_error(
            &app,
            Method::POST,
            &participants,
            JSON,
            j(&p),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        )
        .await;
        assert_eq!(v["error"]["details"]["email"], email);
        let mut deploy = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 3);
        deploy["participants"][1]["email"] = json!(email);
        expect_error(
            &app,
            Method::POST,
            "/api/v1/events",
            JSON,
            j(&deploy),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        )
        .await;
    }
    // What Moodle accepts still passes: an ASCII address in any case, a punycode domain.
    for (i, email) in ["Ada.Lovelace@Example.ORG", "ada@xn--bcher-kva.example"]
        .into_iter()
        .enumerate()
    {
        let mut p = participant(&format!("ok{i}"), "student");
        p["email"] = json!(email);
        let (status, body) = app.post(&participants, &p).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{email}: {body}");
    }
}

async fn store_unavailable(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 1).await;
    app.store().close().await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/events/{id}")),
        (Method::POST, format!("/api/v1/events/{id}/end")),
        (Method::GET, "/api/v1/audit".to_string()),
        (Method::GET, "/readyz".to_string()),
    ] {
        let resp = app.request(method.clone(), &path).send().await.unwrap();
        let (status, body) = read(resp).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(code(&body), "store_unavailable");
    }
    let (status, _) = app.get("/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "liveness does not depend on the store"
    );
}

both_backends!(
    bad_requests,
    sizes_and_media_types,
    unknown_ids_routes_and_methods,
    rule_refusals_and_conflicts,
    emails_moodle_refuses,
    store_unavailable,
);
