//! Issue 4: time to provision E events × 20 participants against a simulator answering in 20 ms
//! (400 ms more per duplication), beside the lower bound that latency and the worker's
//! concurrency allow.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use moodle_sim::{Faults, SimConfig, SimHandle, Simulator};
use store::Store;

use crate::calls::{deploy, people, put_environment, saga_config, worker};
use crate::db::BenchDb;
use crate::report::{Section, Table};
use crate::stats::thousands;
use crate::Opts;

const LATENCY_MS: u64 = 20;
const DUPLICATE_MS: u64 = 400;
const PARTICIPANTS: usize = 20;

pub async fn run(opts: &Opts) -> Section {
    let events: usize = if opts.quick { 20 } else { 200 };
    let limit = Duration::from_secs(if opts.quick { 120 } else { 900 });
    let mut s = Section::new("3. Provisioning time (issue 4)");
    s.line(format!(
        "{events} events × {PARTICIPANTS} participants (all new to Moodle) are deployed into a \
         SQLite store first; then one saga worker (`Worker::run`, the production loop) is \
         started and timed until the saga has nothing pending. The simulator adds {LATENCY_MS} \
         ms to every call and {DUPLICATE_MS} ms more to each course duplication. The worker \
         runs an event's calls one after another and up to `concurrency` events at once, so \
         no schedule can beat ⌈events ÷ concurrency⌉ × (calls per event × {LATENCY_MS} ms + \
         {DUPLICATE_MS} ms): that is the lower bound (calls per event as measured). Bounded at \
         {} s.\n",
        limit.as_secs()
    ));
    let db = BenchDb::sqlite();
    let result = measure(&db, events, limit).await;
    db.remove().await;
    match result {
        Ok(t) => s.line(t.render()),
        Err(e) => s.unmeasured(format!("provisioning time: {e:#}")),
    }
    s
}

async fn measure(db: &BenchDb, events: usize, limit: Duration) -> anyhow::Result<Table> {
    let sim = Simulator::start_local(SimConfig {
        faults: Faults {
            latency_ms: LATENCY_MS,
            duplicate_latency_ms: DUPLICATE_MS,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await?;
    let store = Store::connect(&db.url).await?;
    let result = measure_with(&store, &sim, events, limit).await;
    store.close().await;
    sim.shutdown().await;
    result
}

async fn measure_with(
    store: &Store,
    sim: &SimHandle,
    events: usize,
    limit: Duration,
) -> anyhow::Result<Table> {
    put_environment(store).await?;
    eprintln!("   deploying {events} events × {PARTICIPANTS} participants");
    for e in 0..events {
        let id = uuid::Uuid::new_v4().to_string();
        deploy(store, &id, people(&format!("prov{e}"), PARTICIPANTS)).await?;
    }
    let config = saga_config();
    let concurrency = config.concurrency.max(1);
    let worker = worker(store, sim, config)?;
    sim.reset_calls();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    eprintln!("   provisioning (concurrency {concurrency})");
    let started = Instant::now();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let waited = async {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let st = saga::status(store).await?;
            if st.head > 0 && st.lag == 0 && st.pending == 0 && st.in_flight == 0 {
                return Ok::<_, anyhow::Error>(st);
            }
        }
    };
    let outcome = tokio::time::timeout(limit, waited).await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = task.await;
    let status = outcome.with_context(|| format!("not finished after {} s", limit.as_secs()))??;
    if !status.parked.is_empty() {
        bail!("{} event(s) parked", status.parked.len());
    }
    let state = sim.snapshot();
    let courses = state
        .courses
        .values()
        .filter(|c| c.categoryid == moodle_sim::EVENTS_CATEGORY_ID)
        .count();
    let enrolments: usize = state
        .courses
        .values()
        .filter(|c| c.categoryid == moodle_sim::EVENTS_CATEGORY_ID)
        .filter_map(|c| state.enrolments.get(&c.id))
        .map(|e| e.len())
        .sum();
    if courses != events || enrolments != events * PARTICIPANTS {
        bail!(
            "Moodle holds {courses} courses and {enrolments} enrolments; expected {events} and {}",
            events * PARTICIPANTS
        );
    }
    let calls: u64 = sim.call_counts().values().sum();
    let per_event = calls as f64 / events as f64;
    let critical_ms = per_event * LATENCY_MS as f64 + DUPLICATE_MS as f64;
    let rounds = events.div_ceil(concurrency) as f64;
    let bound_s = rounds * critical_ms / 1000.0;
    let secs = elapsed.as_secs_f64();
    let mut table = Table::new(&[
        "events × participants",
        "concurrency",
        "calls (per event)",
        "time",
        "lower bound",
        "time / bound",
        "events/s",
    ]);
    table.row(vec![
        format!("{events} × {PARTICIPANTS}"),
        concurrency.to_string(),
        format!("{} ({per_event:.1})", thousands(calls)),
        format!("{secs:.2} s"),
        format!(
            "{bound_s:.2} s ({rounds:.0} rounds × {:.0} ms)",
            critical_ms
        ),
        format!("{:.2}", if bound_s > 0.0 { secs / bound_s } else { 0.0 }),
        format!("{:.1}", events as f64 / secs),
    ]);
    Ok(table)
}
