//! Issue 2: command throughput and p50/p99 latency through the HTTP API, beside a bare INSERT of
//! the same rows into the same database; and the cost of the gap-safe ordering on PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use store::sqlx;
use store::{DbPool, Store};
use tokio::task::JoinSet;

use crate::db::{BenchDb, Kind};
use crate::report::{Section, Table};
use crate::stats::{per_sec, rate, ratio, Samples};
use crate::Opts;

mod baseline;

use baseline::{bare_inserts, create_plain_table, ordering, read_groups};

/// The PostgreSQL trigger that serialises appends (migrations/postgres/0001_events.sql).
const ORDERING_TRIGGER: &str = "events_serialize_appends";

/// One row of the log, as text, ready to insert elsewhere.
#[derive(Debug, Clone)]
struct Row {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

/// The rows one command appended (one transaction).
type Group = Vec<Row>;

struct Measured {
    commands: u64,
    errors: u64,
    first_error: Option<String>,
    api_secs: f64,
    api: Samples,
    rows: u64,
    bare_secs: f64,
    bare: Samples,
}

pub async fn run(opts: &Opts) -> Section {
    let mut s =
        Section::new("1. Command API (issue 2): throughput and latency beside a bare INSERT");
    let total_ops: usize = if opts.quick { 150 } else { 1500 };
    let budget = Duration::from_secs(if opts.quick { 30 } else { 120 });
    s.line(format!(
        "A mix of commands through the HTTP API over loopback (reqwest → axum → cqrs-es → store, \
         with idempotency bookkeeping, the audit seal and the answer's read-back): in turn \
         `POST /api/v1/events` (deploy, 5 participants), `POST /api/v1/events/{{id}}/participants` \
         and `PUT /api/v1/environments/{{id}}`, {total_ops} commands split over C concurrent \
         clients (each run stops early after {} s). Then the very rows those commands appended \
         (read back from `events`: same count, same payloads and metadata, grouped per command) \
         are INSERTed by C concurrent tasks, one transaction per command, into a plain table of \
         the same shape (the seven columns cqrs-es writes, same primary key, no `position`, no \
         trigger, no secondary index) in the same database. SQLite runs with WAL and \
         `synchronous=FULL`, as the engine does.\n",
        budget.as_secs()
    ));
    let mut table = Table::new(&[
        "store",
        "C",
        "commands",
        "API cmd/s",
        "API p50 ms",
        "API p99 ms",
        "rows",
        "bare INSERT cmd/s",
        "bare p50 ms",
        "bare p99 ms",
        "API / bare",
    ]);
    let mut configs: Vec<(Kind, usize, bool)> = Vec::new();
    for kind in [Kind::Sqlite, Kind::Postgres] {
        for clients in [1usize, 8] {
            configs.push((kind, clients, false));
        }
    }
    configs.push((Kind::Postgres, 8, true));
    let mut pg_down: Option<String> = None;
    for (kind, clients, trigger_off) in configs {
        let label = if trigger_off {
            format!("{} (ordering trigger off)", kind.label())
        } else {
            kind.label().to_string()
        };
        if kind == Kind::Postgres {
            if let Some(why) = &pg_down {
                s.unmeasured(format!("API on {label}, C={clients}: {why}"));
                continue;
            }
        }
        eprintln!("   {label}, C={clients}");
        let db = match BenchDb::fresh(kind, &opts.pg).await {
            Ok(db) => db,
            Err(e) => {
                let why = format!("{e:#}");
                s.unmeasured(format!("API on {label}, C={clients}: {why}"));
                pg_down = Some(why);
                continue;
            }
        };
        let result = measure(&db, clients, total_ops, budget, trigger_off).await;
        db.remove().await;
        match result {
            Ok(m) => {
                let api_rate = per_sec(m.commands, m.api_secs);
                let bare_rate = per_sec(m.commands, m.bare_secs);
                let commands = if m.errors > 0 {
                    format!("{} ({} errors)", m.commands, m.errors)
                } else {
                    m.commands.to_string()
                };
                if let Some(err) = m.first_error {
                    s.line(format!("- {label}, C={clients}: first error: `{err}`"));
                }
                table.row(vec![
                    label,
                    clients.to_string(),
                    commands,
                    rate(api_rate),
                    format!("{:.2}", m.api.percentile_ms(50.0)),
                    format!("{:.2}", m.api.percentile_ms(99.0)),
                    m.rows.to_string(),
                    rate(bare_rate),
                    format!("{:.2}", m.bare.percentile_ms(50.0)),
                    format!("{:.2}", m.bare.percentile_ms(99.0)),
                    format!("{:.2}", ratio(api_rate, bare_rate)),
                ]);
            }
            Err(e) => s.unmeasured(format!("API on {label}, C={clients}: {e:#}")),
        }
    }
    if !table.is_empty() {
        s.line(table.render());
        s.line(
            "`API / bare` is the API's throughput as a fraction of the bare INSERT's (1.00 would \
             mean the engine costs nothing over writing the rows). The row with the ordering \
             trigger off is the same API run with `ALTER TABLE events DISABLE TRIGGER \
             events_serialize_appends` in the benchmark database: it shows what the gap-safe \
             order costs end to end.\n",
        );
    }

    s.line("### Gap-safe ordering on PostgreSQL\n");
    if let Some(why) = &pg_down {
        s.unmeasured(format!("gap-safe ordering cost: {why}"));
        return s;
    }
    let appends: usize = if opts.quick { 400 } else { 4000 };
    s.line(format!(
        "Appends straight into the real `events` table (identity `position`, its indexes), one \
         row of a deploy's size per transaction, {appends} per round split over C concurrent \
         writers, with the statement-level advisory-lock trigger `{ORDERING_TRIGGER}` enabled \
         and disabled. Rounds alternate on, off, on, off; each mode's figures pool its two \
         rounds.\n"
    ));
    match ordering(opts, appends).await {
        Ok(t) => s.line(t.render()),
        Err(e) => s.unmeasured(format!("gap-safe ordering cost: {e:#}")),
    }
    s.line(
        "`cost` = 1 − (appends/s with the trigger ÷ appends/s without). Without the trigger, \
         positions drawn by concurrent transactions can become visible out of order and a \
         follower could skip one for ever; the trigger makes appends to the log take turns. With one \
         writer there is nothing to serialise and the trigger only adds a function call, so the \
         one-writer row shows this machine's run-to-run noise rather than a cost.\n",
    );
    s
}

async fn exec(store: &Store, sql: &str) -> anyhow::Result<()> {
    match store.pool() {
        DbPool::Sqlite(p) => {
            sqlx::query(sql).execute(p).await?;
        }
        DbPool::Postgres(p) => {
            sqlx::query(sql).execute(p).await?;
        }
    }
    Ok(())
}

fn participant(email_tag: &str, k: usize) -> Value {
    json!({
        "id": format!("p{k}"),
        "email": format!("{email_tag}-p{k}@bench.example.org"),
        "first_name": "Bench",
        "last_name": format!("Participant {k}"),
        "role": if k == 0 { "instructor" } else { "student" },
    })
}

async fn send(req: reqwest::RequestBuilder, body: &Value) -> anyhow::Result<()> {
    let resp = req.json(body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    // Read the answer, as a client would.
    let _ = resp.bytes().await?;
    Ok(())
}

/// One client: deploy, add a participant to what it deployed, put an environment; repeat.
async fn client(
    http: reqwest::Client,
    base: String,
    c: usize,
    ops: usize,
    deadline: Instant,
) -> (Samples, u64, u64, Option<String>) {
    let mut samples = Samples::default();
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    let mut last_event: Option<String> = None;
    for i in 0..ops {
        if Instant::now() >= deadline {
            break;
        }
        let tag = format!("c{c}-i{i}");
        let (req, body) = match (i % 3, &last_event) {
            (1, Some(event)) => (
                http.post(format!("{base}/api/v1/events/{event}/participants")),
                {
                    let mut p = participant(&tag, 9);
                    p["id"] = json!(format!("extra-{i}"));
                    p
                },
            ),
            (2, _) => (
                http.put(format!("{base}/api/v1/environments/env-{tag}")),
                json!({"name": format!("Environment {tag}"), "moodle_template_course_id": null}),
            ),
            _ => {
                let id = uuid::Uuid::new_v4().to_string();
                last_event = Some(id.clone());
                (
                    http.post(format!("{base}/api/v1/events")),
                    json!({
                        "id": id,
                        "environment_id": "bench-env",
                        "name": format!("Bench event {tag}"),
                        "participants": (0..5).map(|k| participant(&tag, k)).collect::<Vec<_>>(),
                    }),
                )
            }
        };
        let t = Instant::now();
        match send(req, &body).await {
            Ok(()) => {
                samples.push(t.elapsed());
                ok += 1;
            }
            Err(e) => {
                errors += 1;
                if first_error.is_none() {
                    first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
    (samples, ok, errors, first_error)
}

async fn measure(
    db: &BenchDb,
    clients: usize,
    total_ops: usize,
    budget: Duration,
    trigger_off: bool,
) -> anyhow::Result<Measured> {
    let store = Store::connect(&db.url)
        .await
        .with_context(|| format!("opening {}", db.kind.label()))?;
    let result = measure_on(&store, db.kind, clients, total_ops, budget, trigger_off).await;
    store.close().await;
    result
}

async fn measure_on(
    store: &Store,
    kind: Kind,
    clients: usize,
    total_ops: usize,
    budget: Duration,
    trigger_off: bool,
) -> anyhow::Result<Measured> {
    if trigger_off {
        exec(
            store,
            &format!("ALTER TABLE events DISABLE TRIGGER {ORDERING_TRIGGER}"),
        )
        .await?;
    }
    create_plain_table(store, kind).await?;

    let state =
        api::AppState::new(store.clone(), api::ApiConfig::default()).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .timeout(Duration::from_secs(30))
        .build()?;

    let outcome = async {
        send(
            http.put(format!("{base}/api/v1/environments/bench-env")),
            &json!({"name": "Bench environment", "moodle_template_course_id": null}),
        )
        .await
        .context("setting up the environment")?;
        let head0 = store.head().await?;

        let deadline = Instant::now() + budget;
        let started = Instant::now();
        let mut set = JoinSet::new();
        for c in 0..clients {
            let ops = total_ops / clients + usize::from(c < total_ops % clients);
            set.spawn(client(http.clone(), base.clone(), c, ops, deadline));
        }
        let mut api = Samples::default();
        let (mut commands, mut errors) = (0u64, 0u64);
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            let (samples, ok, err, first) = joined?;
            api.extend(samples);
            commands += ok;
            errors += err;
            first_error = first_error.or(first);
        }
        let api_secs = started.elapsed().as_secs_f64();

        let groups = read_groups(store, head0).await?;
        if groups.len() as u64 != commands {
            eprintln!(
                "   note: {} commands answered 2xx, {} command groups in the log",
                commands,
                groups.len()
            );
        }
        let rows = groups.iter().map(|g| g.len() as u64).sum();
        let bare_commands = groups.len() as u64;
        let (bare, bare_secs) = bare_inserts(store, groups, clients).await?;
        // Scale the bare time to the API's command count if they differ (they should not).
        let bare_secs = if bare_commands > 0 && bare_commands != commands {
            bare_secs * commands as f64 / bare_commands as f64
        } else {
            bare_secs
        };
        Ok::<_, anyhow::Error>(Measured {
            commands,
            errors,
            first_error,
            api_secs,
            api,
            rows,
            bare_secs,
            bare,
        })
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}
