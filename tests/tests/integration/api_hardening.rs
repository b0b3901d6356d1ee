//! One client cannot hold the API, and every error is JSON (issue 13): each attack reproduced
//! on raw sockets against the in-process server, with short limits so a test waits seconds.
//! The timeouts below are only a safety net (a hang fails instead of blocking); nothing asserts
//! how fast anything happened.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{code, read, ApiConfig, Backend, TestApp};

/// Longest wait for anything the server should do by itself within a few seconds.
const SAFETY: Duration = Duration::from_secs(60);

fn limits(header_secs: u64, body_secs: u64, max_connections: usize) -> ApiConfig {
    ApiConfig {
        http: api::HttpLimits {
            header_timeout: Duration::from_secs(header_secs),
            body_timeout: Duration::from_secs(body_secs),
            max_connections,
        },
        ..ApiConfig::default()
    }
}

async fn app(config: ApiConfig) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, config)
        .await
        .expect("SQLite is always there")
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; the bytes it sent before.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(SAFETY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server never closed the connection");
    out
}

/// Status and JSON body of a raw HTTP/1.1 answer.
fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn half_a_header_and_an_idle_keep_alive_are_closed() {
    let app = app(limits(1, 30, 64)).await;
    // Slow header: the head never ends.
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert_eq!(until_closed(&mut slow).await, b"", "no answer, just closed");
    // Idle keep-alive: one answered request, then silence.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = parse(&until_closed(&mut idle).await);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_or_drips_gets_408_json() {
    let app = app(limits(30, 1, 64)).await;
    let head = b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    // One byte of a declared hundred, then nothing.
    let mut stalled = connect(&app).await;
    stalled.write_all(head).await.unwrap();
    stalled.write_all(b"{").await.unwrap();
    let (status, body) = parse(&until_closed(&mut stalled).await);
    assert_eq!(status, 408, "{body}");
    assert_eq!(code(&body), "request_timeout", "{body}");
    // Dripping a byte at a time does not stretch the deadline: it is for the whole body.
    let mut drip = connect(&app).await;
    drip.write_all(head).await.unwrap();
    let (mut reader, mut writer) = drip.into_split();
    let dripping = tokio::spawn(async move {
        for _ in 0..99 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut raw = Vec::new();
    let got = tokio::time::timeout(SAFETY, reader.read_to_end(&mut raw)).await;
    assert!(got.is_ok(), "the dripping body was waited for");
    let (status, body) = parse(&raw);
    assert_eq!(status, 408, "{body}");
    assert_eq!(code(&body), "request_timeout");
    dripping.abort();
    assert_eq!(app.head().await, 0, "nothing appended");
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_and_health_still_answers() {
    let cap = 20;
    let app = app(limits(2, 30, cap)).await;
    let mut held = Vec::new();
    for _ in 0..cap * 2 {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    // A fresh client is served once the header timeout frees the slots the slow ones hold.
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    for s in &mut held {
        assert_eq!(
            until_closed(s).await,
            b"",
            "a held connection got an answer"
        );
    }
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn errors_of_the_http_layer_are_json() {
    let app = app(ApiConfig::default()).await;
    for (method, path, status, expected) in [
        ("GET", "/no/such/route", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/api/v1/events/not-a-uuid", 400, "invalid_uuid"),
        ("GET", "/api/v1/audit?limit=many", 400, "invalid_request"),
    ] {
        let mut s = connect(&app).await;
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let raw = until_closed(&mut s).await;
        let (got, body) = parse(&raw);
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(code(&body), expected, "{method} {path}: {body}");
    }
    // hyper answers these itself, before any service sees the request: the status is right
    // and the connection closed, but the body stays empty (docs/api.md says so).
    let long = format!("/healthz?q={}", "a".repeat(100_000));
    for (target, status) in [(long.as_str(), 414), ("/healthz?a=<b", 400)] {
        let mut s = connect(&app).await;
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let (got, _) = parse(&until_closed(&mut s).await);
        assert_eq!(got, status);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_email_lookup_is_422_before_moodle_is_called() {
    // Moodle "enabled" at an address where nothing listens: a call would answer 502.
    let mut config = ApiConfig::default();
    config.moodle.enabled = true;
    config.moodle.url = Some("http://127.0.0.1:9".to_string());
    config.moodle.token = Some("t0ken".into());
    config.moodle.allow_insecure_http = true;
    let app = app(config).await;
    let (status, body) = app.get("/api/v1/moodle/users?email=notanemail").await;
    assert_eq!(status.as_u16(), 422, "{body}");
    assert_eq!(code(&body), "invalid_email", "{body}");
    assert_eq!(body["error"]["details"]["email"], "notanemail");
    let (status, body) = app.get("/api/v1/moodle/users?email=ada@uni.example").await;
    assert_eq!(
        status.as_u16(),
        502,
        "a valid email does reach Moodle: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_tells_the_client_only_an_id() {
    let app = app(ApiConfig::default()).await;
    app.environment("env", None).await;
    let id = app.deploy("env", 1).await;
    match app.store().pool() {
        store::DbPool::Sqlite(p) => sqlx::query("DROP TABLE events")
            .execute(p)
            .await
            .map(|_| ()),
        store::DbPool::Postgres(p) => sqlx::query("DROP TABLE events")
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect("dropping the log table");
    let resp = app
        .request(reqwest::Method::GET, &format!("/api/v1/events/{id}"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status.as_u16(), 500, "{body}");
    assert_eq!(code(&body), "internal_error");
    assert_eq!(body["error"]["message"], "internal error");
    let details = body["error"]["details"].as_object().expect("details");
    assert_eq!(details.len(), 1, "{body}");
    let error_id = details["id"].as_str().expect("an id");
    assert!(uuid::Uuid::parse_str(error_id).is_ok(), "{error_id}");
    let text = body.to_string();
    assert!(
        !text.contains("events") && !text.contains("table"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_carry_the_build_version() {
    let app = app(ApiConfig::default()).await;
    let text = app
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "openvle_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    assert!(text.contains("# TYPE openvle_build_info gauge"), "{text}");
    app.stop().await;
}
