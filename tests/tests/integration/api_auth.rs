//! Bearer tokens: writer may do everything, auditor only GET, no token or a wrong one is 401.

use reqwest::{Method, StatusCode};
use serde_json::json;

use support::{both_backends, code, deploy_body, read, ApiConfig, Backend, TestApp, Token};

const WRITER: &str = "writer-token-0123456789";
const AUDITOR: &str = "auditor-token-0123456789";

fn config() -> ApiConfig {
    ApiConfig {
        writer_token: Some(Token::new(WRITER)),
        audit_token: Some(Token::new(AUDITOR)),
        ..ApiConfig::default()
    }
}

async fn as_token(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let mut rb = app.client.request(method, app.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let resp = rb.send().await.unwrap();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, value) = read(resp).await;
    (status, value, www)
}

async fn writer_and_auditor(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, config()).await else {
        return;
    };
    // The helpers send the writer token.
    app.environment("env", None).await;
    let id = app.deploy("env", 2).await;
    let event = format!("/api/v1/events/{id}");
    let head = app.head().await;

    // No token, a wrong token, a malformed header: 401 with WWW-Authenticate.
    for token in [None, Some("wrong"), Some("")] {
        let (status, body, www) = as_token(&app, token, Method::GET, &event, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(code(&body), "unauthorized");
        assert_eq!(www.as_deref(), Some("Bearer"));
    }
    let resp = app
        .client
        .get(app.url(&event))
        .header("authorization", format!("Basic {WRITER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The auditor reads everything…
    for path in [
        event.clone(),
        format!("{event}/history"),
        "/api/v1/audit".into(),
        "/api/v1/audit/verify".into(),
        "/api/v1/environments/env".into(),
        "/api/v1/capabilities".into(),
    ] {
        let (status, body, _) = as_token(&app, Some(AUDITOR), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // …and writes nothing.
    let writes = [
        (
            Method::POST,
            "/api/v1/events".to_string(),
            Some(deploy_body(&uuid::Uuid::new_v4().to_string(), "env", 1)),
        ),
        (
            Method::PUT,
            "/api/v1/environments/env".to_string(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("{event}/participants"),
            Some(support::participant("a", "student")),
        ),
        (Method::DELETE, format!("{event}/participants/p00001"), None),
        (Method::POST, format!("{event}/end"), None),
        (Method::DELETE, event.clone(), None),
    ];
    for (method, path, body) in &writes {
        let (status, value, _) =
            as_token(&app, Some(AUDITOR), method.clone(), path, body.as_ref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(code(&value), "forbidden");
        let (status, value, _) = as_token(&app, None, method.clone(), path, body.as_ref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(code(&value), "unauthorized");
    }
    assert_eq!(app.head().await, head, "nothing appended");

    // The writer may; the actor recorded is the token's role, never the token.
    let (status, _, _) = as_token(
        &app,
        Some(WRITER),
        Method::POST,
        &format!("{event}/end"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, history, _) = as_token(
        &app,
        Some(AUDITOR),
        Method::GET,
        &format!("{event}/history"),
        None,
    )
    .await;
    let text = history.to_string();
    assert!(!text.contains(WRITER) && !text.contains(AUDITOR));
    assert_eq!(history[1]["metadata"]["actor"], "writer");

    // Public routes need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

async fn no_tokens_no_auth(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, _) = app
        .put("/api/v1/environments/open", &json!({"name": "Open"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A token sent anyway is ignored.
    let (status, _, _) = as_token(
        &app,
        Some("whatever"),
        Method::GET,
        "/api/v1/environments/open",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn auditor_only(backend: Backend) {
    let config = ApiConfig {
        audit_token: Some(Token::new(AUDITOR)),
        ..ApiConfig::default()
    };
    let Some(app) = TestApp::spawn_with(backend, config).await else {
        return;
    };
    let (status, body, _) = as_token(
        &app,
        Some(AUDITOR),
        Method::PUT,
        "/api/v1/environments/x",
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = as_token(&app, Some(AUDITOR), Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = as_token(&app, None, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn bind_policy() {
    let open = ApiConfig::default();
    assert!(api::check_bind_policy("127.0.0.1:8080".parse().unwrap(), &open).is_ok());
    let refused = api::check_bind_policy("0.0.0.0:8080".parse().unwrap(), &open).unwrap_err();
    assert!(refused.contains("OPENVLE_API_TOKEN"), "{refused}");
    assert!(api::check_bind_policy("0.0.0.0:8080".parse().unwrap(), &config()).is_ok());
    assert!(!format!("{:?}", config()).contains(WRITER));
}

both_backends!(writer_and_auditor, no_tokens_no_auth, auditor_only);
