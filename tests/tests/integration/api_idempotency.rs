//! Idempotency-Key: a repeat answers the first answer byte for byte and appends nothing; another
//! body under the same key is refused; concurrent repeats never append twice.

use reqwest::{Method, StatusCode};
use serde_json::json;

use support::{both_backends, code, deploy_body, participant, read, Backend, TestApp};

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, Vec<u8>, bool) {
    let mut rb = app.request(method, path).header("idempotency-key", key);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, resp.bytes().await.unwrap().to_vec(), replayed)
}

async fn replay_answers_the_first_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = deploy_body(&id, "env", 3);

    let (s1, b1, r1) = send(
        &app,
        Method::POST,
        "/api/v1/events",
        "deploy-1",
        Some(&body),
    )
    .await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert!(!r1);
    let head = app.head().await;

    // The event moves on; the replay still answers the first answer.
    let (status, _) = app
        .post(
            &format!("/api/v1/events/{id}/participants"),
            &participant("x", "student"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let head_after_add = app.head().await;
    assert!(head_after_add > head);

    let (s2, b2, r2) = send(
        &app,
        Method::POST,
        "/api/v1/events",
        "deploy-1",
        Some(&body),
    )
    .await;
    assert_eq!(s2, s1);
    assert_eq!(b2, b1, "byte for byte");
    assert!(r2, "marked as replayed");
    assert_eq!(app.head().await, head_after_add, "nothing appended");

    // Same key, other body: refused.
    let other = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 3);
    let (s3, b3, _) = send(
        &app,
        Method::POST,
        "/api/v1/events",
        "deploy-1",
        Some(&other),
    )
    .await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert_eq!(
        code(&serde_json::from_slice(&b3).unwrap()),
        "idempotency_key_reused"
    );
    // Same key and body on another path: refused too.
    let (s4, b4, _) = send(
        &app,
        Method::PUT,
        "/api/v1/environments/env",
        "deploy-1",
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(s4, StatusCode::CONFLICT);
    assert_eq!(
        code(&serde_json::from_slice(&b4).unwrap()),
        "idempotency_key_reused"
    );
    assert_eq!(app.head().await, head_after_add);

    // Commands without a body are idempotent too.
    let end = format!("/api/v1/events/{id}/end");
    let (e1, eb1, _) = send(&app, Method::POST, &end, "end-1", None).await;
    assert_eq!(e1, StatusCode::ACCEPTED);
    let head = app.head().await;
    let (e2, eb2, replayed) = send(&app, Method::POST, &end, "end-1", None).await;
    assert_eq!((e2, &eb2), (e1, &eb1));
    assert!(replayed);
    assert_eq!(app.head().await, head);
    // Without the key, a second end is a conflict.
    let (status, body) = app.call(Method::POST, &end, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "event_ended");
}

async fn errors_release_the_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = uuid::Uuid::new_v4().to_string();
    let body = deploy_body(&id, "later", 2);
    // The environment does not exist yet: 404, nothing remembered.
    let (s1, b1, _) = send(&app, Method::POST, "/api/v1/events", "k", Some(&body)).await;
    assert_eq!(s1, StatusCode::NOT_FOUND);
    assert_eq!(
        code(&serde_json::from_slice(&b1).unwrap()),
        "environment_not_found"
    );
    app.environment("later", None).await;
    // The same request under the same key now succeeds.
    let (s2, _, replayed) = send(&app, Method::POST, "/api/v1/events", "k", Some(&body)).await;
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert!(!replayed);
}

async fn concurrent_repeats_append_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = deploy_body(&id, "env", 200);
    let head = app.head().await;
    let attempts = (0..8).map(|_| send(&app, Method::POST, "/api/v1/events", "same", Some(&body)));
    let results = futures::future::join_all(attempts).await;
    let mut accepted = Vec::new();
    for (status, bytes, _) in &results {
        match *status {
            StatusCode::ACCEPTED => accepted.push(bytes.clone()),
            StatusCode::CONFLICT => {
                let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                assert_eq!(code(&v), "idempotency_key_in_flight", "{v}");
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(bytes)),
        }
    }
    assert!(!accepted.is_empty());
    assert!(
        accepted.windows(2).all(|w| w[0] == w[1]),
        "every 202 is the same answer"
    );
    assert_eq!(app.head().await, head + 1, "one Deployed event");
    let (_, history) = app.get(&format!("/api/v1/events/{id}/history")).await;
    assert_eq!(history.as_array().unwrap().len(), 1);
}

async fn keys_belong_to_their_token(backend: Backend) {
    let config = support::ApiConfig {
        writer_token: Some(support::Token::new("writer-secret")),
        ..Default::default()
    };
    let Some(app) = TestApp::spawn_with(backend, config).await else {
        return;
    };
    app.environment("env", None).await;
    let body = deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1);
    let (status, first, _) = send(&app, Method::POST, "/api/v1/events", "tok", Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, again, replayed) =
        send(&app, Method::POST, "/api/v1/events", "tok", Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(replayed);
    assert_eq!(first, again);
    // A request without the token never reaches the key.
    let resp = app
        .client
        .post(app.url("/api/v1/events"))
        .header("idempotency-key", "tok")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, v) = read(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&v), "unauthorized");
}

both_backends!(
    replay_answers_the_first_answer,
    errors_release_the_key,
    concurrent_repeats_append_once,
    keys_belong_to_their_token,
);
