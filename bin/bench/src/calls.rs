//! Issue 4: REST calls the saga makes to deploy one event with N participants (none in Moodle,
//! then all already there), beside the one-at-a-time 3N+1; and a burst of additions.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, VleEvent};
use domain::participant::ParticipantInput;
use moodle_sim::{SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use store::{CommandMeta, Store};

use crate::db::BenchDb;
use crate::report::{Section, Table};
use crate::Opts;

pub const ENV_ID: &str = "bench-env";
/// Longest wait for one worker pass.
const PASS_LIMIT: Duration = Duration::from_secs(300);

/// The engine's Moodle settings, pointed at the simulator.
pub fn settings(sim: &SimHandle) -> anyhow::Result<moodle::MoodleSettings> {
    let url = sim.url();
    let token = sim.token();
    Ok(moodle::MoodleSettings::from_lookup(|name| match name {
        "MOODLE_ENABLED" => Some("true".to_string()),
        "MOODLE_URL" => Some(url.clone()),
        "MOODLE_TOKEN" => Some(token.clone()),
        "MOODLE_COURSE_CATEGORY_ID" => Some(EVENTS_CATEGORY_ID.to_string()),
        "MOODLE_ALLOW_INSECURE_HTTP" => Some("true".to_string()),
        _ => None,
    })?)
}

/// Worker tuning for the benchmarks: the default concurrency, quick polling.
pub fn saga_config() -> saga::SagaConfig {
    saga::SagaConfig {
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        worker_id: "bench-worker".into(),
        ..saga::SagaConfig::default()
    }
}

/// `n` participants nobody has seen (`tag` keeps them apart); the first is the instructor.
pub fn people(tag: &str, n: usize) -> Vec<ParticipantInput> {
    (0..n)
        .map(|k| ParticipantInput {
            idnumber: None,
            id: format!("p{k}"),
            email: format!("{tag}-p{k}@bench.example.org"),
            username: None,
            first_name: "Bench".into(),
            last_name: format!("{tag} {k}"),
            role: if k == 0 { "instructor" } else { "student" }.into(),
        })
        .collect()
}

/// The environment, linked to the simulator's template course.
pub async fn put_environment(store: &Store) -> anyhow::Result<()> {
    store
        .execute::<Environment>(
            ENV_ID,
            EnvironmentCommand::Put {
                course: Default::default(),
                id: ENV_ID.into(),
                name: "Bench environment".into(),
                moodle_template_course_id: Some(TEMPLATE_COURSE_ID),
            },
            &CommandMeta::new("bench"),
        )
        .await?;
    Ok(())
}

pub async fn deploy(
    store: &Store,
    event_id: &str,
    participants: Vec<ParticipantInput>,
) -> anyhow::Result<()> {
    let environment = store.load::<Environment>(ENV_ID).await?.map(|(e, _)| e);
    store
        .execute::<VleEvent>(
            event_id,
            EventCommand::Deploy {
                context: Default::default(),
                schedule: Default::default(),
                id: event_id.into(),
                environment_id: ENV_ID.into(),
                name: format!("Bench event {event_id}"),
                participants,
                environment,
            },
            &CommandMeta::new("bench"),
        )
        .await?;
    Ok(())
}

async fn add(store: &Store, event_id: &str, participant: ParticipantInput) -> anyhow::Result<()> {
    store
        .execute::<VleEvent>(
            event_id,
            EventCommand::AddParticipant { participant },
            &CommandMeta::new("bench"),
        )
        .await?;
    Ok(())
}

/// One worker pass to idle, bounded in time; fails if anything was parked.
async fn pass(worker: &saga::Worker) -> anyhow::Result<()> {
    let stats = tokio::time::timeout(PASS_LIMIT, worker.run_until_idle())
        .await
        .context("the worker did not go idle in time")??;
    if stats.parked > 0 {
        bail!("the saga parked {} event(s)", stats.parked);
    }
    Ok(())
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// `core_user_get_users_by_field ×2, …`, shortened function names.
fn breakdown(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(f, n)| {
            let short = f
                .trim_start_matches("core_")
                .trim_start_matches("enrol_manual_");
            if *n == 1 {
                short.to_string()
            } else {
                format!("{short} ×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Enrolments in the newest course (the one the last deployment made).
fn newest_course_enrolments(sim: &SimHandle) -> usize {
    let state = sim.snapshot();
    state
        .courses
        .keys()
        .max()
        .and_then(|id| state.enrolments.get(id))
        .map(|e| e.len())
        .unwrap_or(0)
}

pub async fn run(opts: &Opts) -> Section {
    let mut s = Section::new("2. Moodle REST calls per deployment (issue 4)");
    s.line(
        "The saga worker (one `run_until_idle` pass) against the built-in simulator, no \
         latency, SQLite store. Calls are counted by the simulator. *Naive* is the \
         one-at-a-time way: per participant a look-up, a creation and an enrolment, plus one \
         duplication (3N+1); with every user already in Moodle, a look-up and an enrolment \
         (2N+1); for additions, 3 per participant.\n",
    );
    let db = BenchDb::sqlite();
    let result = measure(&db, opts.quick).await;
    db.remove().await;
    match result {
        Ok(t) => s.line(t.render()),
        Err(e) => s.unmeasured(format!("calls per deployment: {e:#}")),
    }
    s.line(
        "`enrolled` is the number of enrolments the simulator holds in the event's course \
         afterwards, as a check that the calls did the whole job.\n",
    );
    s
}

async fn measure(db: &BenchDb, quick: bool) -> anyhow::Result<Table> {
    let sim = Simulator::start_local(SimConfig::default()).await?;
    let store = Store::connect(&db.url).await?;
    let result = measure_with(&store, &sim, quick).await;
    store.close().await;
    sim.shutdown().await;
    result
}

/// A worker on the simulator, with its own Moodle client (the benchmark chooses its settings, as
/// the demo does; no scheduled reconcile).
pub fn worker(
    store: &Store,
    sim: &SimHandle,
    config: saga::SagaConfig,
) -> anyhow::Result<saga::Worker> {
    let settings = settings(sim)?;
    let client = moodle::MoodleClient::new(&settings)?;
    Ok(saga::Worker::new(
        store.clone(),
        Some(client),
        settings.saga(),
        config,
    ))
}

async fn measure_with(store: &Store, sim: &SimHandle, quick: bool) -> anyhow::Result<Table> {
    let config = saga_config();
    let worker = worker(store, sim, config)?;
    put_environment(store).await?;
    pass(&worker).await?;
    let mut table = Table::new(&[
        "case",
        "N",
        "calls",
        "naive",
        "calls / naive",
        "enrolled",
        "calls by function",
    ]);
    let sizes: &[usize] = if quick {
        &[1, 10, 100]
    } else {
        &[1, 10, 100, 1000]
    };
    for (case, existing) in [("new users", false), ("users already in Moodle", true)] {
        for &n in sizes {
            eprintln!("   {case}, N={n}");
            let tag = format!("{}{n}", if existing { "old" } else { "new" });
            let participants = people(&tag, n);
            if existing {
                for p in &participants {
                    sim.create_user_directly(
                        &format!("{tag}-{}", p.id),
                        &p.email,
                        &p.first_name,
                        &p.last_name,
                    );
                }
            }
            sim.reset_calls();
            let event_id = uuid::Uuid::new_v4().to_string();
            deploy(store, &event_id, participants).await?;
            pass(&worker).await?;
            let counts = sim.call_counts();
            let naive = if existing { 2 * n + 1 } else { 3 * n + 1 } as u64;
            table.row(vec![
                case.into(),
                n.to_string(),
                total(&counts).to_string(),
                naive.to_string(),
                format!("{:.3}", total(&counts) as f64 / naive as f64),
                newest_course_enrolments(sim).to_string(),
                breakdown(&counts),
            ]);
        }
    }
    let burst = 50usize;
    eprintln!("   burst of {burst} additions");
    let event_id = uuid::Uuid::new_v4().to_string();
    deploy(store, &event_id, people("burst", 1)).await?;
    pass(&worker).await?;
    for (k, mut p) in people("burst-add", burst).into_iter().enumerate() {
        p.id = format!("added-{k}");
        p.role = "student".into();
        add(store, &event_id, p).await?;
    }
    sim.reset_calls();
    pass(&worker).await?;
    let counts = sim.call_counts();
    let naive = 3 * burst as u64;
    table.row(vec![
        format!("{burst} AddParticipant, then one pass"),
        burst.to_string(),
        total(&counts).to_string(),
        naive.to_string(),
        format!("{:.3}", total(&counts) as f64 / naive as f64),
        newest_course_enrolments(sim).to_string(),
        breakdown(&counts),
    ]);
    Ok(table)
}
