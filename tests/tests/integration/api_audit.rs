//! The audit log over HTTP: pages with `next`, filters, parameter errors, verify.

use reqwest::StatusCode;
use serde_json::Value;

use support::{both_backends, code, participant, Backend, TestApp};

fn positions(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect()
}

async fn paging_and_filters(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env-a", None).await;
    app.environment("env-b", Some(42)).await;
    let first = app.deploy("env-a", 2).await;
    let second = app.deploy("env-b", 1).await;
    for i in 0..3 {
        let (status, _) = app
            .post(
                &format!("/api/v1/events/{first}/participants"),
                &participant(&format!("x{i}"), "student"),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let head = app.head().await;
    // env-a: 1, env-b: 2, deploys: 2, adds: 3
    assert_eq!(head, 8);

    // Everything, a page of 3 at a time.
    let mut all = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, page) = app
            .get(&format!("/api/v1/audit?after={after}&limit=3"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let got = positions(&page);
        assert!(got.len() <= 3);
        all.extend(got);
        match page["next"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(all, (1..=head).collect::<Vec<_>>());
    assert!(pages >= 3);

    // Entries carry everything an auditor needs.
    let (_, page) = app.get("/api/v1/audit?limit=1").await;
    let e = &page["events"][0];
    for field in [
        "position",
        "event_id",
        "stream",
        "aggregate_id",
        "sequence",
        "type",
        "version",
        "at",
        "payload",
        "metadata",
    ] {
        assert!(!e[field].is_null(), "{field} missing: {e}");
    }
    assert_eq!(page["next"], 1);

    // Filters.
    let (_, page) = app.get(&format!("/api/v1/audit?stream={first}")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    assert!(page["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["aggregate_id"] == first.as_str()));
    assert_eq!(page["next"], Value::Null);
    let (_, page) = app.get("/api/v1/audit?type=Deployed").await;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["aggregate_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    let (_, page) = app.get("/api/v1/audit?aggregate_type=environment").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let (_, page) = app
        .get("/api/v1/audit?aggregate_type=event&type=ParticipantAdded&limit=2")
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().expect("a next page");
    let (_, page) = app
        .get(&format!(
            "/api/v1/audit?aggregate_type=event&type=ParticipantAdded&limit=2&after={next}"
        ))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/api/v1/audit?from=2999-01-01T00:00:00Z").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 0);
    assert_eq!(page["next"], Value::Null);
    let (_, page) = app.get("/api/v1/audit?to=2000-01-01T00:00:00Z").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 0);
    let (_, page) = app
        .get("/api/v1/audit?from=2000-01-01T00:00:00%2B02:00&to=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(positions(&page).len() as i64, head);

    // Bad parameters.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=-1",
        "from=yesterday",
        "to=1",
        "colour=red",
    ] {
        let (status, body) = app.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(code(&body), "invalid_request", "{query}");
    }
}

async fn verify_is_ok(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, report) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    app.environment("env", None).await;
    app.deploy("env", 5).await;
    let (status, report) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["head"], 2);
    assert_eq!(report["first_break"], Value::Null);
}

both_backends!(paging_and_filters, verify_is_ok);
