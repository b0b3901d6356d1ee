//! Model-based test of the whole engine: random sequences of OpenVLE commands (deploy, add,
//! remove, end, delete across 3 events and 2 environments — one linked to the template, one
//! not —, people shared between events, some already in Moodle under an email in another
//! case) interleaved with faults (bursts of transient errors, answers lost after Moodle applied
//! the call, worker restarts, workers aborted mid-flight), run against the Moodle simulator, a
//! SQLite store and a saga worker; Moodle's final state is compared with the seed's table
//! applied to the commands (`support::lifecycle::Model`). The domain's accept/refuse decisions
//! are compared with the model's too. proptest shrinks a failure to a minimal sequence.
//!
//! CI: a fixed seed and 20 cases (`cargo test -p openvle-tests --features slow --test integration model::`).
//! Longer run: `OPENVLE_MODEL_CASES=500 cargo test -p openvle-tests --features slow --test integration model:: -- --nocapture`
//! (add `OPENVLE_MODEL_SEED=<n>` for another fixed seed, or `OPENVLE_MODEL_SEED=random`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moodle::{ClientOptions, MoodleClient, Secret};
use moodle_sim::{
    LostKind, ScriptedFault, SimConfig, SimHandle, Simulator, TransientKind, EVENTS_CATEGORY_ID,
    TEMPLATE_COURSE_ID,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use saga::{SagaConfig, SagaSettings, Worker};
use store::Store;
use support::lifecycle::{execute, Cmd, Model, Person};

/// Totals over the run, printed at the end (so a run that exercised nothing shows it).
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

const EVENTS: usize = 3;
const PEOPLE: usize = 6;
const MUTATING: [&str; 6] = [
    "core_course_duplicate_course",
    "core_user_create_users",
    "enrol_manual_enrol_users",
    "enrol_manual_unenrol_users",
    "core_course_update_courses",
    "core_course_delete_courses",
];

#[derive(Debug, Clone)]
enum Op {
    Deploy {
        ev: usize,
        linked: bool,
        people: BTreeMap<usize, bool>,
    },
    Add {
        ev: usize,
        person: usize,
        instructor: bool,
    },
    Remove {
        ev: usize,
        person: usize,
    },
    End {
        ev: usize,
    },
    Delete {
        ev: usize,
    },
    /// The next `n` calls (any function) fail transiently, nothing applied.
    Transient {
        n: usize,
        kind: u8,
    },
    /// The next call of a changing function is applied, then its answer lost.
    Lost {
        function: usize,
        drop: bool,
    },
    /// Let the worker run until nothing is pending.
    Run,
    /// Drop the worker and start a new one with the same id.
    Restart,
    /// A worker running in the background, aborted after `after_ms` (wherever it is).
    Crash {
        after_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ev = 0..EVENTS;
    let person = 0..PEOPLE;
    prop_oneof![
        1 => ev.clone().prop_flat_map(deploy_op),
        4 => (ev.clone(), person.clone(), any::<bool>())
            .prop_map(|(ev, person, instructor)| Op::Add { ev, person, instructor }),
        3 => (ev.clone(), person).prop_map(|(ev, person)| Op::Remove { ev, person }),
        1 => ev.clone().prop_map(|ev| Op::End { ev }),
        1 => ev.prop_map(|ev| Op::Delete { ev }),
        1 => (1usize..4, 0u8..3).prop_map(|(n, kind)| Op::Transient { n, kind }),
        2 => (0..MUTATING.len(), any::<bool>()).prop_map(|(function, drop)| Op::Lost { function, drop }),
        2 => Just(Op::Run),
        1 => Just(Op::Restart),
        1 => (0u64..40).prop_map(|after_ms| Op::Crash { after_ms }),
    ]
}

fn deploy_op(ev: usize) -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        prop::collection::btree_map(0..PEOPLE, any::<bool>(), 0..4),
    )
        .prop_map(move |(linked, people)| Op::Deploy {
            ev,
            linked: linked || ev == 0,
            people,
        })
}

/// People already in Moodle (by hand, emails in upper case), and the sequence: most events
/// deployed first (so that most later commands apply), then random operations.
fn scenario() -> impl Strategy<Value = (BTreeSet<usize>, Vec<Op>)> {
    let first = (0..EVENTS)
        .map(|ev| prop::option::weighted(0.8, deploy_op(ev)))
        .collect::<Vec<_>>();
    (
        prop::collection::btree_set(0..PEOPLE, 0..3),
        first,
        prop::collection::vec(op(), 1..30),
    )
        .prop_map(|(pre, first, rest)| (pre, first.into_iter().flatten().chain(rest).collect()))
}

fn event_id(ev: usize) -> String {
    format!("e{ev}")
}

fn person(p: usize, instructor: bool) -> Person {
    Person::new(&format!("p{p}"), &format!("p{p}@example.org"), instructor)
}

fn command(op: &Op) -> Option<Cmd> {
    Some(match op {
        Op::Deploy { ev, linked, people } => Cmd::Deploy {
            event: event_id(*ev),
            env: if *linked { "lab" } else { "plain" }.into(),
            people: people.iter().map(|(p, i)| person(*p, *i)).collect(),
        },
        Op::Add {
            ev,
            person: p,
            instructor,
        } => Cmd::Add {
            event: event_id(*ev),
            person: person(*p, *instructor),
        },
        Op::Remove { ev, person } => Cmd::Remove {
            event: event_id(*ev),
            participant: format!("p{person}"),
        },
        Op::End { ev } => Cmd::End {
            event: event_id(*ev),
        },
        Op::Delete { ev } => Cmd::Delete {
            event: event_id(*ev),
        },
        _ => return None,
    })
}

fn worker(store: &Store, sim: &SimHandle) -> Worker {
    let client = MoodleClient::from_parts(
        &sim.url(),
        Secret::new(sim.token()),
        ClientOptions {
            allow_insecure_http: true,
            timeout: Duration::from_secs(10),
            duplicate_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    Worker::new(
        store.clone(),
        Some(client),
        SagaSettings {
            delete_course_on_event_delete: true,
            ..SagaSettings::enabled(EVENTS_CATEGORY_ID)
        },
        SagaConfig {
            concurrency: 3,
            poll_interval: Duration::from_millis(10),
            worker_id: "model".into(),
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(20),
            // Short, so that the claims of an aborted worker expire quickly.
            lease: Duration::from_millis(300),
            ..SagaConfig::default()
        },
    )
}

async fn idle(w: &Worker) -> Result<(), TestCaseError> {
    match tokio::time::timeout(Duration::from_secs(60), w.run_until_idle()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(TestCaseError::fail(format!("the saga failed: {e}"))),
        Err(_) => Err(TestCaseError::fail("the saga did not become idle in 60 s")),
    }
}

async fn run_case(preexisting: BTreeSet<usize>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let url = store::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.unwrap();
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    let mut model = Model::default();
    for p in &preexisting {
        sim.create_user_directly(
            &format!("p{p}"),
            &format!("P{p}@Example.ORG"),
            "Pre",
            "Existing",
        );
        model.preexisting.insert(format!("p{p}@example.org"));
    }
    for (id, template) in [("lab", Some(TEMPLATE_COURSE_ID)), ("plain", None)] {
        let cmd = Cmd::Environment {
            id: id.into(),
            template,
        };
        model.apply(&cmd);
        execute(&store, &cmd).await.unwrap();
    }
    let mut w = worker(&store, &sim);
    for op in &ops {
        if let Some(cmd) = command(op) {
            let accepted = model.apply(&cmd);
            let result = execute(&store, &cmd).await;
            if accepted {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
            } else {
                REFUSED.fetch_add(1, Ordering::Relaxed);
            }
            prop_assert_eq!(
                accepted,
                result.is_ok(),
                "model and domain disagree on {:?}: {:?}",
                cmd,
                result
            );
            continue;
        }
        match op {
            Op::Transient { n, kind } => {
                FAULTS.fetch_add(*n as u64, Ordering::Relaxed);
                let how = match kind {
                    0 => TransientKind::UnableToLock,
                    1 => TransientKind::Http503,
                    _ => TransientKind::HtmlPage,
                };
                for _ in 0..*n {
                    sim.push_fault(None, ScriptedFault::Transient { how });
                }
            }
            Op::Lost { function, drop } => {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                let how = if *drop {
                    LostKind::Drop
                } else {
                    LostKind::Http502
                };
                sim.push_fault(Some(MUTATING[*function]), ScriptedFault::Lost { how });
            }
            Op::Run => idle(&w).await?,
            Op::Restart => w = worker(&store, &sim),
            Op::Crash { after_ms } => {
                // A process of its own (its own pool), killed wherever it is: the task is
                // aborted and its pool closed (a dead process's connections close, releasing
                // SQLite's write lock and rolling back what it had not committed).
                CRASHES.fetch_add(1, Ordering::Relaxed);
                let own = Store::connect(&url).await.unwrap();
                let task = tokio::spawn(worker(&own, &sim).run(std::future::pending()));
                tokio::time::sleep(Duration::from_millis(*after_ms)).await;
                task.abort();
                let _ = task.await;
                own.close().await;
                w = worker(&store, &sim);
            }
            _ => unreachable!(),
        }
    }
    // Faults still queued would only hit later calls: drop them, then converge.
    sim.update_faults(|f| f.queue.clear());
    let w = worker(&store, &sim);
    idle(&w).await?;
    let status = saga::status(&store).await.unwrap();
    prop_assert!(status.parked.is_empty(), "parked: {:?}", status.parked);
    if let Err(diff) = model.check(&sim.snapshot()) {
        return Err(TestCaseError::fail(format!(
            "Moodle differs from the table:\n{diff}\nmodel: {:?}",
            model.events
        )));
    }
    CALLS.fetch_add(sim.calls().len() as u64, Ordering::Relaxed);
    sim.shutdown().await;
    store.close().await;
    store::testing::remove_sqlite_files(&url);
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
fn moodle_matches_the_table_after_random_commands_and_faults() {
    let cases = std::env::var("OPENVLE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = match std::env::var("OPENVLE_MODEL_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(s) => RngSeed::Fixed(s.parse().expect("OPENVLE_MODEL_SEED: a number or random")),
        None => RngSeed::Fixed(20_240_601),
    };
    let config = Config {
        cases,
        rng_seed: seed,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(config);
    // The failure message carries the sequence that failed, with the model's view of it.
    let result = runner.run(&scenario(), |(pre, ops)| {
        let shown = format!("preexisting: {pre:?}\nsequence: {ops:#?}");
        rt.block_on(run_case(pre, ops)).map_err(|e| match e {
            TestCaseError::Fail(why) => TestCaseError::fail(format!("{why}\n{shown}")),
            other => other,
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let total = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{cases} cases (shrinking included): {} commands accepted, {} refused (model and domain agreed), \
         {} faults injected, {} workers aborted, {} Moodle calls",
        total(&ACCEPTED),
        total(&REFUSED),
        total(&FAULTS),
        total(&CRASHES),
        total(&CALLS)
    );
    assert!(
        total(&ACCEPTED) > 0 && total(&CALLS) > 0,
        "the run exercised nothing"
    );
}
