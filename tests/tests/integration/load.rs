//! Load (issue 6, item 4): N concurrent writers issuing commands against one engine (the real API
//! on a random port), on SQLite and on PostgreSQL.
//!
//! Checked: no lost update (each event's final view holds exactly the participants whose add was
//! accepted and whose removal was not; the log holds exactly one event per accepted command), no
//! 5xx other than a documented 503 (which must carry `store_unavailable` and `Retry-After`), the
//! audit chain intact. Printed, not asserted: commands/s and p50/p99 latency, conflicts, 503s.
//!
//! Writers behave like a careful client: every command carries an `Idempotency-Key`, and a
//! `409 concurrent_modification`, a `409 idempotency_key_in_flight` or a 503 is retried with the
//! same key.
//!
//! `OPENVLE_LOAD_WRITERS` and `OPENVLE_LOAD_COMMANDS` (per writer) override 16 × 25.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use support::{both_backends, code, participant, read, Backend, TestApp};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
enum Command {
    Add { event: usize, pid: String },
    Remove { event: usize, pid: String },
}

#[derive(Debug, Default)]
struct WriterReport {
    /// (event index, participant id, added (true) or removed)
    accepted: Vec<(usize, String, bool)>,
    latencies: Vec<Duration>,
    conflicts: usize,
    in_flight: usize,
    unavailable: usize,
    /// Anything that is not 202 nor a retried answer: (status, body).
    unexpected: Vec<(u16, String)>,
    positions: usize,
}

/// The commands of writer `w`: adds of its own participants, with every fifth command removing
/// the participant it added two commands earlier.
fn plan(w: usize, n: usize, events: usize) -> Vec<Command> {
    let mut out = Vec::with_capacity(n);
    for j in 0..n {
        let event = (w + j) % events;
        if j % 5 == 4 {
            let earlier = j - 2;
            out.push(Command::Remove {
                event: (w + earlier) % events,
                pid: format!("w{w:02}-{earlier:03}"),
            });
        } else {
            out.push(Command::Add {
                event,
                pid: format!("w{w:02}-{j:03}"),
            });
        }
    }
    out
}

async fn writer(
    client: reqwest::Client,
    base: String,
    events: Vec<String>,
    w: usize,
    n: usize,
    tag: &'static str,
) -> WriterReport {
    let mut report = WriterReport::default();
    for (j, command) in plan(w, n, events.len()).into_iter().enumerate() {
        let key = format!("{tag}-w{w}-c{j}");
        let (method, url, body, event, pid, added) = match &command {
            Command::Add { event, pid } => (
                reqwest::Method::POST,
                format!("{base}/api/v1/events/{}/participants", events[*event]),
                Some(participant(pid, "student")),
                *event,
                pid.clone(),
                true,
            ),
            Command::Remove { event, pid } => (
                reqwest::Method::DELETE,
                format!("{base}/api/v1/events/{}/participants/{pid}", events[*event]),
                None,
                *event,
                pid.clone(),
                false,
            ),
        };
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut rb = client
                .request(method.clone(), &url)
                .header("idempotency-key", &key);
            if let Some(b) = &body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    report.unexpected.push((0, format!("transport: {e}")));
                    break;
                }
            };
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let (status, value) = read(resp).await;
            match (status, code(&value)) {
                (StatusCode::ACCEPTED, _) => {
                    report.latencies.push(started.elapsed());
                    report.accepted.push((event, pid.clone(), added));
                    report.positions += value["positions"].as_array().map_or(0, Vec::len);
                    break;
                }
                (StatusCode::CONFLICT, "concurrent_modification") => report.conflicts += 1,
                (StatusCode::CONFLICT, "idempotency_key_in_flight") => {
                    report.in_flight += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable") => {
                    report.unavailable += 1;
                    if retry_after.is_none() {
                        report
                            .unexpected
                            .push((503, format!("503 without Retry-After: {value}")));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (s, _) => {
                    report.unexpected.push((s.as_u16(), value.to_string()));
                    break;
                }
            }
            if attempts > 200 {
                report
                    .unexpected
                    .push((0, format!("gave up after {attempts} attempts: {key}")));
                break;
            }
        }
    }
    report
}

/// How many events the log holds after `after`, read through the audit API page by page.
async fn events_after(app: &TestApp, mut after: i64) -> usize {
    let mut n = 0;
    loop {
        let (status, page) = app
            .get(&format!("/api/v1/audit?after={after}&limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        n += page["events"].as_array().map_or(0, Vec::len);
        match page["next"].as_i64() {
            Some(next) => after = next,
            None => return n,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One round: `writers` tasks × `n` commands spread over `events` events deployed for it.
async fn round(app: &TestApp, backend: Backend, tag: &'static str, events: usize) {
    let writers = env_usize("OPENVLE_LOAD_WRITERS", 16);
    let n = env_usize("OPENVLE_LOAD_COMMANDS", 25);
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..events {
            ids.push(app.deploy("env", 1).await);
        }
        ids
    };
    let head_before = app.head().await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            tokio::spawn(writer(
                app.client.clone(),
                app.base.clone(),
                ids.clone(),
                w,
                n,
                tag,
            ))
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.expect("writer task"));
    }
    let elapsed = started.elapsed();

    // No 5xx other than a documented 503, nothing unexpected at all.
    let unexpected: Vec<_> = reports.iter().flat_map(|r| r.unexpected.clone()).collect();
    assert!(unexpected.is_empty(), "{backend:?} {tag}: {unexpected:?}");

    // Every command was accepted exactly once.
    let accepted: usize = reports.iter().map(|r| r.accepted.len()).sum();
    assert_eq!(accepted, writers * n, "{backend:?} {tag}: commands lost");

    // The log holds one event per accepted command, no more (a retry appended nothing).
    let head_after = app.head().await;
    let positions: usize = reports.iter().map(|r| r.positions).sum();
    assert_eq!(
        positions, accepted,
        "{backend:?} {tag}: positions per command"
    );
    // (Counted, not subtracted: PostgreSQL positions may have gaps from rolled-back attempts.)
    let appended = events_after(app, head_before).await;
    assert_eq!(
        appended, accepted,
        "{backend:?} {tag}: appended events vs accepted commands (head {head_before} -> {head_after})"
    );

    // No lost update: each view holds exactly the participants expected.
    let mut expected: BTreeMap<usize, BTreeSet<String>> = (0..events)
        .map(|e| (e, BTreeSet::from(["p00000".to_string()])))
        .collect();
    // Adds and removes of one participant come from one writer, in order.
    for r in &reports {
        for (event, pid, added) in &r.accepted {
            let set = expected.get_mut(event).unwrap();
            if *added {
                assert!(set.insert(pid.clone()), "{pid} added twice");
            } else {
                assert!(set.remove(pid), "{pid} removed before being added");
            }
        }
    }
    for (e, id) in ids.iter().enumerate() {
        let (status, view) = app.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        let got: BTreeSet<String> = view["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .map(|p: &Value| p["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            got, expected[&e],
            "{backend:?} {tag}: event {e} lost an update"
        );
    }

    let verify = app.store().verify().await.expect("verify");
    assert!(verify.ok, "{backend:?} {tag}: {verify:?}");

    let mut lat: Vec<Duration> = reports.iter().flat_map(|r| r.latencies.clone()).collect();
    lat.sort();
    let conflicts: usize = reports.iter().map(|r| r.conflicts).sum();
    let in_flight: usize = reports.iter().map(|r| r.in_flight).sum();
    let unavailable: usize = reports.iter().map(|r| r.unavailable).sum();
    println!(
        "load {backend:?} {tag}: {writers} writers x {n} commands on {events} event(s): {accepted} commands in {:.2} s = {:.1} commands/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; retried: {conflicts} concurrent_modification, {in_flight} in flight, {unavailable} x 503",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn concurrent_writers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.environment("env", None).await;
    // Spread over a few events, then every writer on one hot event.
    round(&app, backend, "spread", 4).await;
    round(&app, backend, "hot", 1).await;
    app.stop().await;
}

both_backends!(
    #[cfg_attr(
        not(feature = "slow"),
        ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
    )]
    concurrent_writers
);
