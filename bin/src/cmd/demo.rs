//! `openvle-moodle demo`: the whole product on its embedded defaults, in one process.
//!
//! It starts the built-in Moodle simulator, opens a fresh SQLite store, serves the HTTP API on a
//! loopback port with a Moodle worker, and then plays OpenVLE core: it links an environment to
//! the simulator's template course and runs one event through deploy, add, remove, end and
//! delete, waiting after each step until Moodle is in sync. It ends with the event's story, the
//! audit check and where to look next.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::cli::{DemoArgs, WorkerArgs};
use crate::cmd::serve::{moodle_client, saga_config, saga_control};
use crate::settings::Settings;

const TOKEN: &str = "demo-token";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("openvle-moodle-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db_path = args.database.clone().unwrap_or_else(|| dir.join("demo.db"));
    let database_url = format!("sqlite://{}", db_path.display());

    // 1. A Moodle to talk to.
    let sim = moodle_sim::Simulator::start_local(moodle_sim::SimConfig {
        token: TOKEN.to_string(),
        ..Default::default()
    })
    .await
    .context("starting the Moodle simulator")?;
    // Someone who already has a Moodle account, under another letter case of their email.
    sim.create_user_directly("grace", "Grace.Hopper@Example.org", "Grace", "Hopper");

    // 2. The engine, configured as an operator would (see README: Configuration).
    let all = Settings::from_lookup(database_url.clone(), |name| match name {
        "MOODLE_ENABLED" => Some("true".to_string()),
        "MOODLE_URL" => Some(sim.url()),
        "MOODLE_TOKEN" => Some(TOKEN.to_string()),
        "MOODLE_COURSE_CATEGORY_ID" => Some(moodle_sim::EVENTS_CATEGORY_ID.to_string()),
        "MOODLE_DELETE_COURSE_ON_EVENT_DELETE" => Some("true".to_string()),
        "MOODLE_ALLOW_INSECURE_HTTP" => Some("true".to_string()),
        _ => None,
    })?;
    let settings = &all.moodle;
    let store = store::Store::connect(&database_url)
        .await
        .context("opening the demo's SQLite store")?;
    let config = api::ApiConfig {
        moodle: settings.clone(),
        ..Default::default()
    };
    let client = moodle_client(&all)?;
    let state = api::AppState::sharing(store.clone(), config, client.clone())
        .with_saga(saga_control(&store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let worker_args = WorkerArgs {
        concurrency: 4,
        max_duplications: 1,
        worker_id: Some("demo-worker".into()),
        retry_base_ms: 200,
        retry_max_ms: 5_000,
        max_attempts: 20,
    };
    let mut saga_cfg = saga_config(&all, &worker_args);
    saga_cfg.poll_interval = Duration::from_millis(50);
    let worker = saga::Worker::new(store.clone(), client, all.saga(), saga_cfg);
    let mut rx = stop_rx.clone();
    let worker = tokio::spawn(worker.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));

    println!("openvle-moodle demo");
    println!("  event store     {database_url}");
    println!("  HTTP API        {base}/api/v1  (OpenAPI: {base}/api/v1/openapi.json)");
    println!("  Moodle (sim)    {}", sim.url());
    println!();

    let http = reqwest::Client::new();
    let result = play(&http, &base, &sim, args.participants.max(2)).await;

    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = worker.await;
    sim.shutdown().await;
    let event_id = result?;
    println!();
    println!("The event's story (openvle-moodle audit show --event {event_id}):");
    crate::cmd::audit_show::run(
        &store,
        &crate::cmd::audit_show::AuditShowArgs {
            event: event_id.clone(),
            event_type: None,
            from: None,
            to: None,
            json: false,
        },
    )
    .await?;
    println!();
    println!("Where to look next:");
    println!("  openvle-moodle --database-url {database_url} audit show --event {event_id}");
    println!("  openvle-moodle --database-url {database_url} audit verify");
    println!("  openvle-moodle --database-url {database_url} status");
    println!("  openvle-moodle serve    (then GET /api/v1/events/<id>, /api/v1/audit, /metrics)");
    println!("  README.md: configuration, operations, troubleshooting");
    Ok(())
}

async fn play(
    http: &reqwest::Client,
    base: &str,
    sim: &moodle_sim::SimHandle,
    participants: usize,
) -> anyhow::Result<String> {
    let env_id = "env-networking-lab";
    send(
        http.put(format!("{base}/api/v1/environments/{env_id}")),
        json!({"name": "Networking lab", "moodle_template_course_id": moodle_sim::TEMPLATE_COURSE_ID}),
    )
    .await?;
    println!(
        "1. environment {env_id} linked to Moodle template course {}",
        moodle_sim::TEMPLATE_COURSE_ID
    );

    let event_id = uuid::Uuid::new_v4().to_string();
    let mut people = vec![
        json!({"id": "t-ada", "email": "ada@example.org", "first_name": "Ada",
        "last_name": "Lovelace", "role": "instructor"}),
    ];
    people.push(
        json!({"id": "s-grace", "email": "grace.hopper@example.org", "first_name": "Grace",
        "last_name": "Hopper", "role": "student"}),
    );
    for i in 2..participants {
        people.push(
            json!({"id": format!("s-{i}"), "email": format!("student{i}@example.org"),
            "first_name": "Student", "last_name": format!("Number {i}"), "role": "student"}),
        );
    }
    sim.reset_calls();
    send(
        http.post(format!("{base}/api/v1/events")),
        json!({"id": event_id, "environment_id": env_id, "name": "Networking lab, spring run",
               "participants": people}),
    )
    .await?;
    let view = wait_in_sync(http, base, &event_id).await?;
    let calls: u64 = sim.call_counts().values().sum();
    println!(
        "2. deployed event {event_id} with {participants} participants: Moodle course {} in {calls} REST calls",
        view["moodle"]["course_id"]
    );

    send(
        http.post(format!("{base}/api/v1/events/{event_id}/participants")),
        json!({"id": "s-late", "email": "late@example.org", "first_name": "Late",
               "last_name": "Comer", "role": "student"}),
    )
    .await?;
    wait_in_sync(http, base, &event_id).await?;
    println!("3. participant s-late added and enrolled");

    send(
        http.delete(format!("{base}/api/v1/events/{event_id}/participants/s-2")),
        Value::Null,
    )
    .await?;
    wait_in_sync(http, base, &event_id).await?;
    println!("4. participant s-2 removed and unenrolled");

    send(
        http.post(format!("{base}/api/v1/events/{event_id}/end")),
        Value::Null,
    )
    .await?;
    let view = wait_in_sync(http, base, &event_id).await?;
    let course_id = view["moodle"]["course_id"].as_i64().unwrap_or_default();
    let moodle_state = sim.snapshot();
    let enrolled = moodle_state
        .enrolments
        .get(&course_id)
        .map(|e| e.len())
        .unwrap_or_default();
    let visible = moodle_state.courses.get(&course_id).map(|c| c.visible);
    println!("5. event ended: students unenrolled, {enrolled} instructor(s) kept, course visible = {visible:?}");

    send(
        http.delete(format!("{base}/api/v1/events/{event_id}")),
        Value::Null,
    )
    .await?;
    wait_in_sync(http, base, &event_id).await?;
    let exists = sim.snapshot().courses.contains_key(&course_id);
    println!(
        "6. event deleted: Moodle course {course_id} deleted = {}",
        !exists
    );

    // The audit log, a page at a time, as an auditor reads it.
    let (mut pages, mut entries, mut next) = (0, 0, Some("0".to_string()));
    while let Some(after) = next.take() {
        let page = get(http, &format!("{base}/api/v1/audit?after={after}&limit=10")).await?;
        pages += 1;
        entries += page["events"].as_array().map(Vec::len).unwrap_or_default();
        next = match &page["next"] {
            Value::Null => None,
            v => Some(
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            ),
        };
        if pages > 10_000 {
            break;
        }
    }
    println!();
    println!("Audit log (GET /api/v1/audit?limit=10): {entries} entries in {pages} pages");
    let verify = get(http, &format!("{base}/api/v1/audit/verify")).await?;
    println!(
        "Audit chain: {}",
        if verify["ok"] == json!(true) {
            "intact"
        } else {
            "BROKEN"
        }
    );
    Ok(event_id)
}

async fn send(req: reqwest::RequestBuilder, body: Value) -> anyhow::Result<Value> {
    let req = if body.is_null() { req } else { req.json(&body) };
    let resp = req.send().await.context("calling the engine's API")?;
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("the engine answered {status}: {value}");
    }
    Ok(value)
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    send(http.get(url), Value::Null).await
}

/// Polls the event's view until its Moodle side is in sync (or failed).
async fn wait_in_sync(http: &reqwest::Client, base: &str, event_id: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let view = get(http, &format!("{base}/api/v1/events/{event_id}")).await?;
        match view["moodle"]["state"].as_str() {
            Some("in_sync") => return Ok(view),
            Some("failed") => bail!("the Moodle saga parked: {}", view["moodle"]["last_error"]),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "Moodle did not get in sync within a minute: {}",
                view["moodle"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
