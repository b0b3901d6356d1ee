//! Operations and documentation: health, readiness, capabilities, metrics, the OpenAPI document
//! (it names every route the router serves), and the Moodle routes (off, and on the simulator).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use moodle_sim::{SimConfig, Simulator};
use support::{both_backends, code, read, ApiConfig, Backend, TestApp};

async fn health_and_capabilities(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, body) = app.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    let (status, body) = app.get("/api/v1/capabilities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["moodle"]["enabled"], false);
}

async fn metrics_text(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    app.deploy("env", 1).await;
    let (status, _) = app.get("/api/v1/events/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        "openvle_http_requests_total",
        "openvle_http_request_duration_seconds_bucket",
        "openvle_commands_total",
        r#"route="/api/v1/events""#,
        r#"command="deploy""#,
        r#"outcome="accepted""#,
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from /metrics:\n{text}"
        );
    }
    assert!(
        !text.contains("not-a-uuid"),
        "raw paths never become labels"
    );
    every_family_described(&text);
}

/// Every metric family of the text carries the `openvle_` prefix and a `# HELP` line.
fn every_family_described(text: &str) {
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!families.is_empty(), "{text}");
    for family in families {
        assert!(family.starts_with("openvle_"), "{family} lacks the prefix");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {family} "))),
            "{family} has no HELP line:\n{text}"
        );
    }
}

/// Every route the router serves is in the OpenAPI document, and every documented route is
/// served (neither 404 `not_found` nor 405).
async fn openapi_matches_the_router(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let resp = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc, on_disk, "the served document is the checked-in one");

    let documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routes: Vec<(String, String)> = api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for route in &routes {
        assert!(documented.contains(route), "{route:?} is not documented");
    }
    for route in &documented {
        assert!(
            routes.contains(route),
            "{route:?} is documented but not in api::ROUTES"
        );
    }
    // Every route answers something other than "no such route".
    let uuid = uuid::Uuid::new_v4().to_string();
    for (method, path) in &routes {
        let concrete = path
            .replace("{id}", &uuid)
            .replace("{environment_id}", "env")
            .replace("{participant_id}", "p");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app.request(method.clone(), &concrete).send().await.unwrap();
        let (status, body) = read(resp).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && code(&body) == "not_found"),
            "{method} {concrete} is not routed"
        );
    }
    // Every error code the API answers is documented.
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    for c in [
        "malformed_json",
        "invalid_request",
        "invalid_uuid",
        "payload_too_large",
        "unsupported_media_type",
        "unauthorized",
        "forbidden",
        "event_not_found",
        "environment_not_found",
        "participant_not_found",
        "not_found",
        "method_not_allowed",
        "concurrent_modification",
        "idempotency_key_reused",
        "idempotency_key_in_flight",
        "invalid_email",
        "unknown_role",
        "duplicate_participant",
        "invalid_field",
        "store_unavailable",
        "moodle_disabled",
        "event_ended",
        "participant_exists",
    ] {
        assert!(codes.iter().any(|x| x == c), "{c} not documented");
    }
}

async fn moodle_routes_when_disabled(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    let id = app.deploy("env", 1).await;
    let head = app.head().await;
    for (method, path) in [
        (Method::GET, "/api/v1/moodle/courses?search=x".to_string()),
        (Method::GET, "/api/v1/moodle/users?email=a@b.co".to_string()),
        (Method::GET, "/api/v1/moodle/check".to_string()),
        (Method::POST, format!("/api/v1/events/{id}/moodle/retry")),
    ] {
        let (status, body) = app.call(method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(code(&body), "moodle_disabled", "{method} {path}");
    }
    assert_eq!(app.head().await, head);
}

async fn moodle_routes_on_the_simulator(backend: Backend) {
    let sim = Simulator::start_local(SimConfig::default())
        .await
        .expect("simulator");
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some(sim.url());
    config.moodle.token = Some(moodle::Secret::new(sim.token()));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(moodle_sim::EVENTS_CATEGORY_ID);
    let Some(app) = TestApp::spawn_with(backend, config).await else {
        return;
    };

    let (status, body) = app.get("/api/v1/moodle/courses?search=Template").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let courses = body["courses"].as_array().unwrap();
    assert!(
        courses
            .iter()
            .any(|c| c["id"] == moodle_sim::TEMPLATE_COURSE_ID),
        "{body}"
    );

    let (status, body) = app
        .get("/api/v1/moodle/users?email=admin@sim.invalid")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["exists"], true);
    assert_eq!(body["users"][0]["username"], "admin");
    let (status, body) = app.get("/api/v1/moodle/users?username=nobody").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["exists"], false);
    for bad in ["", "?email=a@b.co&username=x", "?colour=red"] {
        let (status, body) = app.get(&format!("/api/v1/moodle/users{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = app.get("/api/v1/moodle/courses").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = app.get("/api/v1/moodle/check").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["functions_missing"], serde_json::json!([]));

    // Retry on an event that is not parked: accepted, nothing resumed, nothing appended.
    app.environment("env", Some(moodle_sim::TEMPLATE_COURSE_ID))
        .await;
    let id = app.deploy("env", 1).await;
    let head = app.head().await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/events/{id}/moodle/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["resumed"], false);
    assert_eq!(app.head().await, head);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/events/{}/moodle/retry", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "event_not_found");

    // Moodle's calls are counted under the project's prefix, and every family says what it is.
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"openvle_moodle_calls_total{function="core_webservice_get_site_info""#),
        "{text}"
    );
    every_family_described(&text);

    // Moodle down: 502.
    sim.shutdown().await;
    let (status, body) = app.get("/api/v1/moodle/courses?search=Template").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(code(&body), "moodle_unreachable");
}

both_backends!(
    health_and_capabilities,
    metrics_text,
    openapi_matches_the_router,
    moodle_routes_when_disabled,
    moodle_routes_on_the_simulator,
);
