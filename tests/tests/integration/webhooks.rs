//! Webhooks (issue 14, part 3) against a receiver inside the test that checks every signature as
//! the Standard Webhooks specification says (with its own HMAC, not the engine's code), records
//! every `webhook-id`, and can fail deliveries: the real `openvle-moodle serve` through a
//! lifecycle on the simulator (deploy → in_sync, a parked participant, an end), retries of the
//! same id after 500s, order per event, the secret absent from the engine's output; dead messages
//! kept and redelivered; and SIGKILLs of the engine mid-run (slow suite): every state change still
//! delivered, with stable ids, nothing lost. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use moodle_sim::{SimConfig, SimHandle, Simulator, TEMPLATE_COURSE_ID};
use serde_json::{json, Value};
use sha2::Sha256;
use support::binary::{free_port, Proc};
use support::drive::{serve_proc, Http};
use support::{Backend, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    body: Value,
    /// What the receiver answered.
    answered: u16,
}

struct Inner {
    key: Vec<u8>,
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Answer 500 to every n-th request (0: never).
    fail_every: usize,
    /// Answer 500 to everything while set.
    fail_all: std::sync::atomic::AtomicBool,
    requests: AtomicUsize,
    /// Answer only after this long (so a SIGKILL can land between a delivery and its record).
    delay_ms: std::sync::atomic::AtomicU64,
    bad_signatures: Mutex<Vec<String>>,
    hits: Mutex<Vec<Hit>>,
}

/// The receiver OpenVLE core would run.
#[derive(Clone)]
struct Receiver {
    inner: Arc<Inner>,
    url: String,
    secret: String,
}

/// The signature a receiver computes, written from the specification.
fn expected_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn hook(
    State(rx): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let want = expected_signature(&rx.key, &id, &ts, &body);
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    if !fresh || !sig.split(' ').any(|s| s == want) || !id.starts_with("msg_") {
        rx.bad_signatures.lock().unwrap().push(id);
        return StatusCode::UNAUTHORIZED;
    }
    let n = rx.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let fail = rx
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
        .is_ok()
        || (rx.fail_every > 0 && n % rx.fail_every == 0)
        || rx.fail_all.load(Ordering::SeqCst);
    let answered = if fail { 500 } else { 204 };
    rx.hits.lock().unwrap().push(Hit {
        id,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    let delay = rx.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(answered).unwrap()
}

impl Receiver {
    async fn start(fail_first: usize, fail_every: usize) -> Receiver {
        let key: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        let secret = format!("whsec_{}", STANDARD.encode(&key));
        let inner = Arc::new(Inner {
            key,
            fail_first: AtomicUsize::new(fail_first),
            fail_every,
            fail_all: Default::default(),
            requests: AtomicUsize::new(0),
            delay_ms: Default::default(),
            bad_signatures: Mutex::new(Vec::new()),
            hits: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { inner, url, secret }
    }

    fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Every message delivered (answered 2xx), once each, in the order first delivered.
    fn delivered(&self) -> Vec<Hit> {
        let mut seen = BTreeSet::new();
        self.hits()
            .into_iter()
            .filter(|h| h.answered < 300 && seen.insert(h.id.clone()))
            .collect()
    }

    /// The types delivered for `event`, in order.
    fn types_of(&self, event: &str) -> Vec<String> {
        self.delivered()
            .iter()
            .filter(|h| h.body["data"]["event_id"] == event)
            .map(|h| h.body["type"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn assert_signatures_all_good(&self) {
        let bad = self.inner.bad_signatures.lock().unwrap();
        assert!(bad.is_empty(), "badly signed deliveries: {bad:?}");
    }

    async fn wait_for(&self, what: &str, proc: &Mutex<Proc>, done: impl Fn(&Receiver) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < support::drive::DEADLINE,
                "{what}: not delivered; got {:#?}\nengine log:\n{}",
                self.delivered()
                    .iter()
                    .map(|h| h.body.clone())
                    .collect::<Vec<_>>(),
                proc.lock().unwrap().log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks what a receiver relies on, over every hit: each event's deliveries (duplicates
/// included) come in the order of the log, and its state messages form one unbroken chain
/// (each `previous_state` the state delivered before; none lost, none out of place).
fn assert_ordered_chains(rx: &Receiver) {
    let mut per_event: BTreeMap<String, Vec<Hit>> = BTreeMap::new();
    for h in rx.hits().into_iter().filter(|h| h.answered < 300) {
        let event = h.body["data"]["event_id"].as_str().unwrap().to_string();
        per_event.entry(event).or_default().push(h);
    }
    for (event, hits) in &per_event {
        let key = |h: &Hit| {
            let state = h.body["type"]
                .as_str()
                .is_some_and(|t| t != "moodle.parked" && t != "moodle.participant_parked");
            (h.body["data"]["position"].as_i64().unwrap(), state)
        };
        for w in hits.windows(2) {
            assert!(
                key(&w[0]) <= key(&w[1]),
                "{event}: delivered out of order: {} then {}",
                w[0].body,
                w[1].body
            );
        }
        let mut previous = Value::Null;
        let mut seen = BTreeSet::new();
        for h in hits.iter().filter(|h| seen.insert(h.id.clone())) {
            if h.body["data"]["state"].is_string() {
                assert_eq!(
                    h.body["data"]["previous_state"], previous,
                    "{event}: a state change is missing before {}",
                    h.body
                );
                assert_ne!(h.body["data"]["state"], previous, "{}", h.body);
                previous = h.body["data"]["state"].clone();
            }
        }
    }
}

fn sim_flags(sim: &SimHandle) -> Vec<String> {
    vec![
        "MOODLE_ENABLED=true".into(),
        format!("MOODLE_URL={}", sim.url()),
        format!("MOODLE_TOKEN={}", sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        "MOODLE_DUPLICATE_TIMEOUT_SECS=3".into(),
    ]
}

/// `serve` with the webhooks pointed at `rx` (the secret in the environment, as it should be).
fn engine(db_url: &str, sim: &SimHandle, rx: &Receiver, dir: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    let proc = serve_proc(db_url, &sim_flags(sim), port, dir)
        .env("OPENVLE_LOG", "info,webhooks=debug")
        .env("OPENVLE_WEBHOOK_URL", &rx.url)
        .env("OPENVLE_WEBHOOK_SECRET", &rx.secret)
        .env("OPENVLE_WEBHOOK_RETRY_BASE_MS", "50")
        .env("OPENVLE_WEBHOOK_RETRY_MAX_MS", "500")
        .env("OPENVLE_WEBHOOK_TIMEOUT_SECS", "5");
    (proc, port)
}

fn person(id: &str, username: Option<&str>) -> Value {
    let mut p = json!({
        "id": id,
        "email": format!("{id}@example.org"),
        "first_name": "First",
        "last_name": format!("Last {id}"),
        "role": "student",
    });
    if let Some(u) = username {
        p["username"] = json!(u);
    }
    p
}

async fn send(http: &Http, method: reqwest::Method, path: &str, body: Option<&Value>) {
    let (status, answer) = http.call(method, path, body).await.expect("engine answers");
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{path}: {status} {answer}"
    );
}

/// The engine's output never holds the secret, nor its key.
fn assert_secret_not_in(log: &str, rx: &Receiver) {
    let key = rx.secret.trim_start_matches("whsec_");
    assert!(
        !log.contains(key),
        "the webhook secret is in the engine's output"
    );
}

/// The lifecycle through the real binary: a deploy's `pending` then `in_sync`, a participant
/// Moodle refuses (`participant_parked`, then `failed`), an end; the receiver fails the first
/// three requests, which come again with their ids.
async fn lifecycle(db_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    let rx = Receiver::start(3, 0).await;
    let (proc, port) = engine(&db_url, &sim, &rx, dir.path());
    let proc = Mutex::new(proc);
    proc.lock().unwrap().start();
    let http = Http::new(port);
    let started = Instant::now();
    while http.get("/healthz").await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "engine not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    use reqwest::Method;
    let env = json!({"name": "Lab", "moodle_template_course_id": TEMPLATE_COURSE_ID});
    send(&http, Method::PUT, "/api/v1/environments/lab", Some(&env)).await;
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    let deploy = |id: &str, people: Vec<Value>| json!({"id": id, "environment_id": "lab", "name": "Lab run", "participants": people});
    let body = deploy(&a, vec![person("a1", None), person("a2", None)]);
    send(&http, Method::POST, "/api/v1/events", Some(&body)).await;
    let body = deploy(
        &b,
        vec![person("b1", None), person("b2", Some("Not Valid!"))],
    );
    send(&http, Method::POST, "/api/v1/events", Some(&body)).await;
    rx.wait_for("a's in_sync", &proc, |rx| {
        rx.types_of(&a) == ["moodle.pending", "moodle.in_sync"]
    })
    .await;
    send(
        &http,
        Method::POST,
        &format!("/api/v1/events/{a}/end"),
        None,
    )
    .await;
    rx.wait_for("a's end", &proc, |rx| rx.types_of(&a).len() == 4)
        .await;
    rx.wait_for("b's park", &proc, |rx| rx.types_of(&b).len() == 3)
        .await;
    assert_eq!(
        rx.types_of(&a),
        [
            "moodle.pending",
            "moodle.in_sync",
            "moodle.pending",
            "moodle.in_sync"
        ]
    );
    assert_eq!(
        rx.types_of(&b),
        [
            "moodle.pending",
            "moodle.participant_parked",
            "moodle.failed"
        ]
    );
    let delivered = rx.delivered();
    let parked = delivered
        .iter()
        .find(|h| h.body["type"] == "moodle.participant_parked")
        .unwrap();
    assert_eq!(parked.body["data"]["participant_id"], "b2");
    assert_eq!(parked.body["data"]["code"], "invalid_username");
    assert!(
        !parked.body.to_string().contains("Not Valid"),
        "no personal data: {}",
        parked.body
    );
    let failed = delivered
        .iter()
        .find(|h| h.body["type"] == "moodle.failed")
        .unwrap();
    assert_eq!(failed.body["data"]["codes"], json!(["invalid_username"]));
    let synced = delivered
        .iter()
        .find(|h| h.body["type"] == "moodle.in_sync")
        .unwrap();
    assert!(synced.body["data"]["course_id"].is_i64(), "{}", synced.body);
    assert!(synced.body["timestamp"]
        .as_str()
        .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));

    // The three 500s: each of those ids came again and was delivered, with the same body.
    let hits = rx.hits();
    let refused: Vec<&Hit> = hits.iter().filter(|h| h.answered == 500).collect();
    assert_eq!(refused.len(), 3, "{hits:#?}");
    for r in refused {
        let again = delivered.iter().find(|h| h.id == r.id).expect("retried");
        assert_eq!(again.body, r.body);
    }
    rx.assert_signatures_all_good();
    assert_ordered_chains(&rx);

    // Metrics and status tell the same.
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "openvle_webhook_delivered_total",
        "openvle_webhook_failed_total",
        "openvle_webhook_delivery_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}:\n{text}"
        );
    }
    let (status, out, err) = proc.lock().unwrap().run_once(&[
        "--database-url".into(),
        db_url.clone(),
        "webhooks".into(),
        "status".into(),
        "--json".into(),
    ]);
    assert!(status.success(), "{out}{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s["pending"].as_i64(), s["dead"].as_i64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(s["delivered"].as_u64(), Some(delivered.len() as u64), "{s}");
    let status = proc.lock().unwrap().terminate(Duration::from_secs(60));
    assert!(status.success(), "SIGTERM: {status}");
    let log = std::fs::read_to_string(dir.path().join("engine.log")).unwrap();
    assert!(log.contains("webhooks started"), "{log}");
    assert_secret_not_in(&log, &rx);
    assert_secret_not_in(&format!("{out}{err}"), &rx);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_is_signed_in_order_and_retried_with_its_ids_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(format!(
        "sqlite://{}",
        dir.path().join("hooks.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_is_signed_in_order_and_retried_with_its_ids_postgres() {
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    lifecycle(db.url.clone()).await;
}

/// A receiver that refuses everything: messages die after the attempts allowed, stay visible
/// in the status, hold nothing else up, and `redeliver` sends them again with their ids.
async fn dead_and_redelivered(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let rx = Receiver::start(0, 0).await;
    rx.inner.fail_all.store(true, Ordering::SeqCst);
    app.environment("plain", None).await;
    let events = [app.deploy("plain", 1).await, app.deploy("plain", 1).await];
    let mut cfg = ::webhooks::WebhookConfig::new(&rx.url, &rx.secret).unwrap();
    cfg.max_attempts = 2;
    cfg.retry_base = Duration::from_millis(1);
    cfg.retry_max = Duration::from_millis(2);
    let hooks =
        ::webhooks::Webhooks::new(app.store().clone(), app.state.config().moodle.saga(), cfg)
            .unwrap();
    for _ in 0..20 {
        hooks.run_until_idle().await.unwrap();
        let s = ::webhooks::status(app.store()).await.unwrap();
        if s.dead == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = ::webhooks::status(app.store()).await.unwrap();
    assert_eq!((s.dead, s.pending, s.lag), (2, 0, 0), "{s:?}");
    assert_eq!(s.dead_messages.len(), 2);
    assert!(
        s.dead_messages[0].error.contains("answered 500"),
        "{:?}",
        s.dead_messages
    );
    assert_eq!(rx.hits().len(), 4, "two attempts each");
    let first_ids: BTreeSet<String> = rx.hits().into_iter().map(|h| h.id).collect();

    // Seen and recovered over HTTP alone: GET /api/v1/status, POST /api/v1/webhooks/redeliver.
    let (_, status) = app.call(reqwest::Method::GET, "/api/v1/status", None).await;
    assert_eq!(status["webhooks"]["dead"], 2, "{status}");
    rx.inner.fail_all.store(false, Ordering::SeqCst);
    let (code, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks/redeliver",
            Some(&serde_json::json!({ "event_id": events[0] })),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["redelivered"], 1, "{body}");
    hooks.run_until_idle().await.unwrap();
    assert_eq!(rx.types_of(&events[0]), ["moodle.disabled"]);
    assert!(rx.types_of(&events[1]).is_empty());
    let n = ::webhooks::redeliver(app.store(), None, None)
        .await
        .unwrap();
    assert_eq!(n, 1);
    hooks.run_until_idle().await.unwrap();
    let delivered: BTreeSet<String> = rx.delivered().into_iter().map(|h| h.id).collect();
    assert_eq!(delivered, first_ids, "redelivered with the same ids");
    let s = ::webhooks::status(app.store()).await.unwrap();
    assert_eq!((s.dead, s.pending, s.delivered), (0, 0, 2), "{s:?}");
    rx.assert_signatures_all_good();
    app.stop().await;
}

support::both_backends!(dead_and_redelivered);

/// The engine SIGKILLed and restarted at random points while events go through their lives and
/// the receiver fails one request in four: every state change is still delivered, in order per
/// event, with ids stable across the kills; duplicates are allowed and counted.
async fn sigkill_mid_run(db_url: String) {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start_local(SimConfig {
        faults: moodle_sim::Faults {
            latency_ms: 10,
            duplicate_latency_ms: 80,
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let rx = Receiver::start(0, 4).await;
    rx.inner.delay_ms.store(150, Ordering::SeqCst);
    let (proc, port) = engine(&db_url, &sim, &rx, dir.path());
    let proc = Arc::new(Mutex::new(proc));
    proc.lock().unwrap().start();
    let http = Http::new(port);
    let mut model = support::lifecycle::Model::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut cmds = vec![support::lifecycle::Cmd::Environment {
        id: "lab".into(),
        template: Some(TEMPLATE_COURSE_ID),
    }];
    let events: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let p = |e: usize, i: usize| {
        support::lifecycle::Person::new(
            &format!("k{e}-{i}"),
            &format!("k{e}-{i}@example.org"),
            i == 0,
        )
    };
    for (e, id) in events.iter().enumerate() {
        cmds.push(support::lifecycle::Cmd::Deploy {
            event: id.clone(),
            env: "lab".into(),
            people: (0..3).map(|i| p(e, i)).collect(),
        });
    }
    for (e, id) in events.iter().enumerate() {
        cmds.push(support::lifecycle::Cmd::Add {
            event: id.clone(),
            person: p(e, 3),
        });
    }
    cmds.push(support::lifecycle::Cmd::End {
        event: events[0].clone(),
    });
    cmds.push(support::lifecycle::Cmd::Delete {
        event: events[1].clone(),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chaos = {
        let proc = proc.clone();
        let stop = stop.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(29);
        tokio::spawn(async move {
            let mut kills = 0u32;
            while kills < 8 || !stop.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(150..700))).await;
                let mut p = proc.lock().unwrap();
                p.kill();
                p.start();
                kills += 1;
            }
            kills
        })
    };
    for c in &cmds {
        assert!(model.apply(c));
        http.ensure(c, &proc).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
    }
    // The kills go on while the saga converges and the outbox drains.
    let (views, _) = http.converge(&model, &proc).await;
    stop.store(true, Ordering::Release);
    let kills = chaos.await.unwrap();
    proc.lock().unwrap().start();
    // Every event's last delivered state is the one the API shows.
    for (id, view) in &views {
        let want = format!("moodle.{}", view["moodle"]["state"].as_str().unwrap());
        rx.wait_for("the final state", &proc, |rx| {
            rx.types_of(id)
                .iter()
                .rev()
                .find(|t| !t.ends_with("parked"))
                .is_some_and(|t| *t == want)
        })
        .await;
    }
    // Nothing left in the outbox, every message in it delivered.
    let started = Instant::now();
    let status = loop {
        let (ok, out, err) = proc.lock().unwrap().run_once(&[
            "--database-url".into(),
            db_url.clone(),
            "webhooks".into(),
            "status".into(),
            "--json".into(),
        ]);
        assert!(ok.success(), "{out}{err}");
        let s: Value = serde_json::from_str(&out).unwrap();
        if s["pending"] == 0 && s["lag"] == 0 {
            break s;
        }
        assert!(started.elapsed() < support::drive::DEADLINE, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["dead"], 0, "{status}");
    let delivered = rx.delivered();
    assert_eq!(
        status["delivered"].as_u64(),
        Some(delivered.len() as u64),
        "every message of the outbox reached the receiver: {status}"
    );
    rx.assert_signatures_all_good();
    assert_ordered_chains(&rx);
    for e in &events {
        let types = rx.types_of(e);
        assert_eq!(
            types.first().map(String::as_str),
            Some("moodle.pending"),
            "{e}: {types:?}"
        );
        assert!(
            types.contains(&"moodle.in_sync".to_string()),
            "{e}: {types:?}"
        );
    }
    let hits = rx.hits();
    let ok = hits.iter().filter(|h| h.answered < 300).count();
    println!(
        "webhooks through {kills} SIGKILLs: {} messages delivered, {} duplicate deliveries, {} \
         answered 500 and retried",
        delivered.len(),
        ok - delivered.len(),
        hits.len() - ok
    );
    let status = proc.lock().unwrap().terminate(Duration::from_secs(60));
    assert!(status.success());
    let log = std::fs::read_to_string(dir.path().join("engine.log")).unwrap();
    assert_secret_not_in(&log, &rx);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn webhooks_survive_sigkill_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_mid_run(format!("sqlite://{}", dir.path().join("kill.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn webhooks_survive_sigkill_postgres() {
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    sigkill_mid_run(db.url.clone()).await;
}
