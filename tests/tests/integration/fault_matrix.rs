//! The fault matrix of `shared/design-notes.md` ("Crash and fault points worth a test each"),
//! one test each, in-process (store + saga worker + Moodle simulator) unless the real binary is
//! needed. SIGKILL of a real process and SIGTERM mid-batch live in `kill.rs`.
//!
//! Every test ends by comparing Moodle (the simulator's state) with the seed's table
//! (`support::lifecycle::Model`), and most also count the Moodle calls that change something,
//! so a double effect cannot hide behind a converged end state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use domain::event::EventEvent;
use domain::moodle_sync::{MoodleSync, MoodleSyncEvent};
use domain::participant::ParticipantInput;
use moodle::{ClientOptions, MoodleClient, Secret};
use moodle_sim::{
    Faults, LostKind, ScriptedFault, SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID,
    TEMPLATE_COURSE_ID,
};
use saga::{SagaConfig, SagaSettings, Worker};
use store::{DbPool, Store};
use support::lifecycle::{execute, Cmd, Model, Person};
use support::{both_backends, Backend, TestDb};

const DEADLINE: Duration = Duration::from_secs(120);

/// A store, a simulator and the model of what Moodle must hold.
struct Rig {
    db: TestDb,
    sim: SimHandle,
    model: Model,
}

impl Rig {
    async fn new(backend: Backend, faults: Faults) -> Option<Rig> {
        let db = TestDb::create(backend).await?;
        let sim = Simulator::start_local(SimConfig {
            faults,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let mut rig = Rig {
            db,
            sim,
            model: Model::default(),
        };
        rig.run(&Cmd::Environment {
            id: "lab".into(),
            template: Some(TEMPLATE_COURSE_ID),
        })
        .await;
        Some(rig)
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    fn client_with(&self, timeout: Duration, duplicate_timeout: Duration) -> MoodleClient {
        MoodleClient::from_parts(
            &self.sim.url(),
            Secret::new(self.sim.token()),
            ClientOptions {
                allow_insecure_http: true,
                timeout,
                duplicate_timeout,
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }

    fn client(&self) -> MoodleClient {
        self.client_with(Duration::from_secs(10), Duration::from_secs(20))
    }

    /// A worker as a fresh process would make it: its own pool on the same database.
    async fn fresh_worker(&self, id: &str) -> Worker {
        let store = Store::connect(&self.db.url).await.unwrap();
        Worker::new(store, Some(self.client()), settings(), config(id))
    }

    fn worker(&self, id: &str) -> Worker {
        Worker::new(
            self.store().clone(),
            Some(self.client()),
            settings(),
            config(id),
        )
    }

    /// Applies `cmd` to the model and the log (both must accept it).
    async fn run(&mut self, cmd: &Cmd) {
        assert!(self.model.apply(cmd), "the model refuses {cmd:?}");
        execute(self.store(), cmd)
            .await
            .unwrap_or_else(|e| panic!("the domain refuses {cmd:?}: {e}"));
    }

    async fn run_all(&mut self, cmds: &[Cmd]) {
        for c in cmds {
            self.run(c).await;
        }
    }

    fn check(&self) {
        if let Err(diff) = self.model.check(&self.sim.snapshot()) {
            panic!("Moodle differs from the table:\n{diff}");
        }
    }

    async fn recorded(&self, id: &str) -> MoodleSync {
        self.store()
            .load::<MoodleSync>(id)
            .await
            .unwrap()
            .map(|(s, _)| s)
            .unwrap_or_default()
    }

    /// The saga facts of `id`, decoded.
    async fn facts(&self, id: &str) -> Vec<MoodleSyncEvent> {
        self.store()
            .read_stream("moodle_sync", id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.decode::<MoodleSync>().unwrap())
            .collect()
    }

    /// Calls that changed Moodle (answered or lost after the effect), per function.
    fn applied_calls(&self, function: &str) -> (usize, usize) {
        let calls: Vec<_> = self
            .sim
            .calls()
            .into_iter()
            .filter(|c| {
                c.function == function && (c.outcome == "ok" || c.outcome.starts_with("lost"))
            })
            .collect();
        (calls.len(), calls.iter().map(|c| c.batch_size).sum())
    }

    fn mutating_calls(&self) -> Vec<String> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.function.as_str(),
                    "core_course_duplicate_course"
                        | "core_course_update_courses"
                        | "core_course_delete_courses"
                        | "core_user_create_users"
                        | "enrol_manual_enrol_users"
                        | "enrol_manual_unenrol_users"
                )
            })
            .map(|c| format!("{} ({})", c.function, c.outcome))
            .collect()
    }

    async fn sql(&self, sql: &str) {
        match self.store().pool() {
            DbPool::Sqlite(p) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
            DbPool::Postgres(p) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match self.store().pool() {
            DbPool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            DbPool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }
}

fn settings() -> SagaSettings {
    SagaSettings {
        delete_course_on_event_delete: true,
        ..SagaSettings::enabled(EVENTS_CATEGORY_ID)
    }
}

fn config(worker_id: &str) -> SagaConfig {
    SagaConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        worker_id: worker_id.to_string(),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        lease: Duration::from_secs(30),
        ..SagaConfig::default()
    }
}

async fn idle(w: &Worker) -> saga::RunStats {
    tokio::time::timeout(DEADLINE, w.run_until_idle())
        .await
        .expect("the saga did not become idle within the deadline")
        .unwrap()
}

fn person(id: &str, instructor: bool) -> Person {
    Person::new(id, &format!("{id}@example.org"), instructor)
}

fn deploy(event: &str, people: &[(&str, bool)]) -> Cmd {
    Cmd::Deploy {
        event: event.into(),
        env: "lab".into(),
        people: people.iter().map(|(id, i)| person(id, *i)).collect(),
    }
}

fn add(event: &str, id: &str, instructor: bool) -> Cmd {
    Cmd::Add {
        event: event.into(),
        person: person(id, instructor),
    }
}

fn remove(event: &str, id: &str) -> Cmd {
    Cmd::Remove {
        event: event.into(),
        participant: id.into(),
    }
}

fn end(event: &str) -> Cmd {
    Cmd::End {
        event: event.into(),
    }
}

fn delete(event: &str) -> Cmd {
    Cmd::Delete {
        event: event.into(),
    }
}

/// Polls `done` every 20 ms until it holds (panicking with `what` after the deadline).
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        match done().await {
            Ok(()) => return,
            Err(e) if started.elapsed() > DEADLINE => panic!("{what}: not reached: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Crash after the command commits, before any dispatch.
// ---------------------------------------------------------------------------------------------

/// Commands commit while no worker runs (the process "dies" right after the commits: nothing
/// was dispatched, not even the saga's work rows); a worker started later, in a new process,
/// finds everything through its checkpointed reader.
async fn crash_after_commit_before_dispatch(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    rig.run_all(&[
        deploy("c1", &[("i1", true), ("s1", false), ("s2", false)]),
        deploy("c2", &[("i2", true), ("s1", false)]),
        add("c1", "s3", false),
        remove("c1", "s2"),
        end("c2"),
    ])
    .await;
    // Nothing happened yet: no call, and nothing in the saga's own tables.
    assert!(rig.sim.calls().is_empty());
    let status = saga::status(rig.store()).await.unwrap();
    assert_eq!(status.checkpoint, 0);
    assert_eq!(status.lag, status.head);

    let w = rig.fresh_worker("after-crash").await;
    idle(&w).await;
    rig.check();
    let status = saga::status(rig.store()).await.unwrap();
    assert_eq!((status.lag, status.pending), (0, 0), "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Crash after reading an event, before calling Moodle.
// ---------------------------------------------------------------------------------------------

/// A worker reads the log (its checkpoint moves past the events, their work rows exist) and
/// dies before any call; another one claims the rows and dies before any call too (its claim
/// stays until its lease expires). A third worker finishes everything, once.
async fn crash_after_read_before_call(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    rig.run_all(&[
        deploy("r1", &[("i1", true), ("s1", false)]),
        deploy("r2", &[("i2", true), ("s2", false)]),
    ])
    .await;
    let reader = rig.worker("reader");
    assert!(reader.feed().await.unwrap() > 0);
    drop(reader);
    let status = saga::status(rig.store()).await.unwrap();
    assert_eq!(status.lag, 0, "the checkpoint moved past the events");
    assert_eq!(status.pending, 2, "their work rows wait");
    assert!(rig.sim.calls().is_empty(), "no call was made");

    // A claim by a worker that died before its first call (lease still running for 300 ms).
    let until = chrono::Utc::now().timestamp_millis() + 300;
    rig.sql(&format!(
        "UPDATE saga_work SET claimed_by = 'dead', lease_until = {until}"
    ))
    .await;
    rig.run(&add("r1", "s3", false)).await;

    let w = rig.fresh_worker("survivor").await;
    idle(&w).await;
    rig.check();
    assert_eq!(rig.applied_calls("core_course_duplicate_course").0, 2);
    assert_eq!(rig.applied_calls("core_user_create_users").1, 5);
}

// ---------------------------------------------------------------------------------------------
// 3. Crash after Moodle applied a call, before the saga recorded it.
// ---------------------------------------------------------------------------------------------

/// In every phase, the answer of each changing call is lost after Moodle applied it (scripted,
/// both shapes), and a new worker takes over after each phase (the old one "crashed" with the
/// effect unrecorded). Each course is duplicated once, each account created once, and Moodle
/// ends exactly as the table says.
async fn crash_after_moodle_applied_before_record(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    let lose = |rig: &Rig, functions: &[&str]| {
        for (i, f) in functions.iter().enumerate() {
            let how = if i % 2 == 0 {
                LostKind::Drop
            } else {
                LostKind::Http502
            };
            rig.sim.push_fault(Some(f), ScriptedFault::Lost { how });
        }
    };
    let phases: Vec<(Vec<Cmd>, Vec<&str>)> = vec![
        (
            vec![
                deploy("a1", &[("i1", true), ("s1", false), ("s2", false)]),
                deploy("a2", &[("i2", true), ("s1", false), ("s3", false)]),
            ],
            vec![
                "core_course_duplicate_course",
                "core_user_create_users",
                "enrol_manual_enrol_users",
                "core_course_duplicate_course",
            ],
        ),
        (
            vec![
                add("a1", "s4", false),
                remove("a1", "s2"),
                remove("a2", "s3"),
            ],
            vec![
                "core_user_create_users",
                "enrol_manual_enrol_users",
                "enrol_manual_unenrol_users",
            ],
        ),
        (
            vec![end("a1"), end("a2")],
            vec!["enrol_manual_unenrol_users", "core_course_update_courses"],
        ),
        (vec![delete("a2")], vec!["core_course_delete_courses"]),
    ];
    for (round, (cmds, faults)) in phases.iter().enumerate() {
        rig.run_all(cmds).await;
        lose(&rig, faults);
        let w = rig.fresh_worker(&format!("w{round}")).await;
        let stats = idle(&w).await;
        assert!(
            rig.sim.faults().queue.is_empty(),
            "round {round}: every scripted loss hit a call: {:?}",
            rig.sim.faults().queue
        );
        assert!(stats.retries > 0, "round {round}: the losses were noticed");
        rig.check();
    }
    assert_eq!(rig.applied_calls("core_course_duplicate_course").0, 2);
    // i1, i2, s1, s2, s3, s4: each account applied once.
    assert_eq!(rig.applied_calls("core_user_create_users").1, 6);
    for id in ["a1", "a2"] {
        assert!(rig.recorded(id).await.parked.is_none(), "{id} parked");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Crash after recording, before the checkpoint / done mark moved.
// ---------------------------------------------------------------------------------------------

/// Everything was done and recorded, but the reader's checkpoint and every work row's done mark
/// are rolled back (as if the process died between the record and those writes): a new worker
/// re-reads the whole log and makes no call that changes Moodle.
async fn crash_after_record_before_done_mark(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    rig.run_all(&[
        deploy("d1", &[("i1", true), ("s1", false), ("s2", false)]),
        deploy("d2", &[("i2", true), ("s2", false)]),
        add("d1", "s3", false),
        remove("d1", "s1"),
        end("d2"),
        deploy("d3", &[("i3", true)]),
        delete("d3"),
    ])
    .await;
    idle(&rig.worker("first")).await;
    rig.check();
    rig.sim.reset_calls();
    rig.sql("UPDATE saga_work SET done_position = 0").await;
    rig.sql("UPDATE saga_checkpoints SET position = 0").await;
    let w = rig.fresh_worker("second").await;
    idle(&w).await;
    assert_eq!(rig.mutating_calls(), Vec::<String>::new());
    rig.check();
}

/// The same crash for real: worker tasks aborted right after a fact was recorded (the abort
/// lands before the step's done mark), again and again, each time taken over by a new worker.
/// Each account is created once and each course duplicated once.
///
/// Each victim has a pool of its own, closed after the abort, as a dead process's connections
/// are (aborting a task alone can leave its pooled SQLite connection inside a transaction).
async fn abort_right_after_a_record(backend: Backend) {
    let Some(mut rig) = Rig::new(
        backend,
        Faults {
            latency_ms: 3,
            duplicate_latency_ms: 20,
            ..Faults::default()
        },
    )
    .await
    else {
        return;
    };
    let people: Vec<(String, bool)> = (0..6).map(|i| (format!("k{i}"), i == 0)).collect();
    let refs: Vec<(&str, bool)> = people.iter().map(|(p, i)| (p.as_str(), *i)).collect();
    rig.run_all(&[deploy("k", &refs), deploy("l", &refs[..3])])
        .await;
    let mut aborts = 0;
    for round in 0..12 {
        let before = rig.store().head().await.unwrap();
        let mut cfg = config(&format!("victim{round}"));
        cfg.lease = Duration::from_millis(150);
        let own = Store::connect(&rig.db.url).await.unwrap();
        let w = Worker::new(own.clone(), Some(rig.client()), settings(), cfg);
        let task = tokio::spawn(w.run(std::future::pending()));
        // Abort as soon as the log grows by a saga fact.
        let started = Instant::now();
        loop {
            if rig.store().head().await.unwrap() > before {
                break;
            }
            if started.elapsed() > Duration::from_secs(5) {
                break;
            }
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        own.close().await;
        aborts += 1;
        if round == 5 {
            rig.run(&add("k", "k-late", false)).await;
            rig.run(&remove("l", "k1")).await;
        }
        let status = saga::status(rig.store()).await.unwrap();
        if status.pending == 0 && status.lag == 0 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the last victim's lease expires
    idle(&rig.worker("survivor")).await;
    rig.check();
    assert!(aborts >= 2, "the workers were aborted mid-flight");
    // Counted from the simulator's id counters, not its call log: a call whose client was
    // aborted mid-flight may be applied without reaching the log. Ids are never reused, so the
    // counters count every course and account ever made.
    let moodle = rig.sim.snapshot();
    assert_eq!(moodle.next_course_id - 3, 2, "each course duplicated once");
    assert_eq!(moodle.next_user_id - 4, 7, "each account created once");
}

// ---------------------------------------------------------------------------------------------
// 5. Moodle times out but applied the call.
// ---------------------------------------------------------------------------------------------

/// The duplication outlives the client's timeout (Moodle goes on restoring after the client
/// hung up, as PHP does): the saga must find the course it caused instead of duplicating again,
/// and the event must end fully provisioned, not parked.
///
/// BUG (found by this test, saga): after the timeout the saga looks the course up by
/// shortname, finds the skeleton Moodle created before restoring the template into it, adopts
/// it at once and enrols: the restore has not finished, the course has no manual enrolment
/// instance yet, Moodle answers `wsnoinstance`, which the saga treats as permanent and parks
/// the event for good (a person must `retry`). Minimal sequence: environment linked to
/// template 2; deploy t1 with 3 participants; simulator `duplicate_latency_ms = 1500`, client
/// `duplicate_timeout = 1000 ms` (the saga waits twice that for the course to land); run the worker → parked at `enrol` with `wsnoinstance`.
/// Expected: an adopted course still being restored (no enrolment instance, or missing
/// content) is "not ready yet" — wait and retry (transient), never park. Fixed: the worker
/// retries `wsnoinstance` for a few attempts before it counts as permanent.
async fn moodle_times_out_but_applied(backend: Backend) {
    let Some(mut rig) = Rig::new(
        backend,
        Faults {
            duplicate_latency_ms: 1500,
            ..Faults::default()
        },
    )
    .await
    else {
        return;
    };
    rig.run(&deploy("t1", &[("i1", true), ("s1", false), ("s2", false)]))
        .await;
    let client = rig.client_with(Duration::from_secs(5), Duration::from_millis(1000));
    // Retries spaced like a (fast) production worker: 20 attempts span several seconds, longer
    // than the simulated restore.
    let cfg = SagaConfig {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..config("w")
    };
    let w = Worker::new(rig.store().clone(), Some(client), settings(), cfg);
    idle(&w).await;
    // The saga may adopt the course while Moodle is still restoring into it (Moodle renames it
    // after the template meanwhile); Moodle's own end of the call sets its names back.
    let started = std::time::Instant::now();
    // Named by the default templates: `Lab t1 (t1)` (an id that is no UUID is its own short id).
    while rig
        .sim
        .snapshot()
        .course_by_shortname("Lab t1 (t1)")
        .is_none()
    {
        assert!(started.elapsed() < DEADLINE, "the duplication never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    idle(&w).await;
    // The call that timed out never reaches the simulator's call log (its handler is dropped
    // when the client hangs up); course ids are never reused, so the next id counts them all.
    assert_eq!(rig.sim.snapshot().next_course_id - 3, 1, "duplicated once");
    let sync = rig.recorded("t1").await;
    assert!(
        sync.parked.is_none(),
        "parked after a duplication that timed out: {:?}",
        sync.parked
    );
    rig.check();
}

// ---------------------------------------------------------------------------------------------
// 6. Two workers on one PostgreSQL.
// ---------------------------------------------------------------------------------------------

/// Two long-running workers (separate pools, as two processes) share one PostgreSQL while
/// commands keep arriving and 20 % of Moodle's answers are lost after the effect: Moodle ends
/// as the table says, both workers worked, and no course was ever duplicated twice (a second
/// processor of the same event would have duplicated it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn two_workers_on_one_postgres() {
    let Some(mut rig) = Rig::new(
        Backend::Postgres,
        Faults {
            latency_ms: 2,
            duplicate_latency_ms: 20,
            lose_response_rate: 0.2,
            ..Faults::default()
        },
    )
    .await
    else {
        return;
    };
    let w1 = rig.fresh_worker("p1").await;
    let w2 = rig.fresh_worker("p2").await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let t1 = tokio::spawn(w1.clone().run(stop(rx.clone())));
    let t2 = tokio::spawn(w2.clone().run(stop(rx.clone())));
    let n = 10;
    for i in 0..n {
        let ev = format!("m{i}");
        let ps: Vec<(String, bool)> = (0..4).map(|j| (format!("m{i}-{j}"), j == 0)).collect();
        let refs: Vec<(&str, bool)> = ps.iter().map(|(p, b)| (p.as_str(), *b)).collect();
        rig.run(&deploy(&ev, &refs)).await;
        // Shared people between events.
        rig.run(&add(&ev, "shared", false)).await;
    }
    for i in 0..n {
        let ev = format!("m{i}");
        match i % 4 {
            0 => rig.run(&remove(&ev, &format!("m{i}-1"))).await,
            1 => rig.run(&end(&ev)).await,
            2 => rig.run(&delete(&ev)).await,
            _ => rig.run(&add(&ev, &format!("m{i}-late"), true)).await,
        }
    }
    let store = rig.store().clone();
    eventually("two workers converge", || {
        let snapshot = rig.sim.snapshot();
        let store = store.clone();
        let model = rig.model.clone();
        async move {
            let s = saga::status(&store).await.map_err(|e| e.to_string())?;
            if s.lag > 0 || s.pending > 0 {
                return Err(format!("{s:?}"));
            }
            model.check(&snapshot)
        }
    })
    .await;
    tx.send(true).unwrap();
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();
    let (a, b) = (w1.stats(), w2.stats());
    assert!(a.steps > 0 && b.steps > 0, "both worked: {a:?} {b:?}");
    let duplications = rig
        .sim
        .calls()
        .iter()
        .filter(|c| c.function == "core_course_duplicate_course")
        .count();
    assert!(
        duplications <= n,
        "{duplications} duplications for {n} events (an event had two processors)"
    );
    assert!(saga::status(rig.store()).await.unwrap().parked.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. A late-committing lower position (PostgreSQL).
// ---------------------------------------------------------------------------------------------

async fn raw_insert_participant_added(
    conn: &mut sqlx::PgConnection,
    event: &str,
    sequence: i64,
    p: &Person,
) {
    let participant = ParticipantInput::validate(p.input()).unwrap();
    let payload = serde_json::to_value(EventEvent::ParticipantAdded { participant }).unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('event', $1, $2, 'ParticipantAdded', '1', $3::text::json, '{}'::json)",
    )
    .bind(event)
    .bind(sequence)
    .bind(payload.to_string())
    .execute(conn)
    .await
    .unwrap();
}

/// An append is held open (its transaction not committed) while a later one is issued: the later
/// one cannot become visible first (appends serialise), the saga's reader does not move past the
/// open one, and once both commit the saga processes both — the earlier is never skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn late_committing_lower_position_is_not_skipped() {
    use sqlx::{Connection, Executor};
    let Some(mut rig) = Rig::new(Backend::Postgres, Faults::default()).await else {
        return;
    };
    rig.run_all(&[
        deploy("early", &[("i1", true)]),
        deploy("later", &[("i2", true)]),
    ])
    .await;
    let w = rig.worker("w");
    idle(&w).await;
    let checkpoint_before = saga::status(rig.store()).await.unwrap().checkpoint;

    // Hold an append to "early" open.
    let mut conn = sqlx::PgConnection::connect(&rig.db.url).await.unwrap();
    conn.execute("BEGIN").await.unwrap();
    let seq = rig.store().last_sequence("event", "early").await.unwrap() as i64 + 1;
    let held = person("held", false);
    raw_insert_participant_added(&mut conn, "early", seq, &held).await;
    assert!(rig.model.apply(&Cmd::Add {
        event: "early".into(),
        person: held
    }));

    // A later append to another event, through the engine.
    let later = add("later", "s-later", false);
    assert!(rig.model.apply(&later));
    let store = rig.store().clone();
    let later_task = tokio::spawn(async move { execute(&store, &later).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !later_task.is_finished(),
        "the later append committed while an earlier one was open"
    );
    // The reader sees nothing new and stays put.
    idle(&w).await;
    assert_eq!(
        saga::status(rig.store()).await.unwrap().checkpoint,
        checkpoint_before
    );

    conn.execute("COMMIT").await.unwrap();
    later_task.await.unwrap().unwrap();
    idle(&w).await;
    rig.check();
    let pos = |id: &'static str| {
        let store = rig.store().clone();
        async move {
            store
                .read_stream("event", id)
                .await
                .unwrap()
                .last()
                .unwrap()
                .position
        }
    };
    assert!(pos("early").await < pos("later").await, "commit order");
}

// ---------------------------------------------------------------------------------------------
// 8. A rolled-back append leaving a gap.
// ---------------------------------------------------------------------------------------------

/// An append rolled back (on PostgreSQL it consumed a position: a permanent gap) does not stall
/// or confuse the saga: the next append, with the same stream sequence, is processed.
async fn rolled_back_append_leaves_a_harmless_gap(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    rig.run(&deploy("g1", &[("i1", true), ("s1", false)])).await;
    let w = rig.worker("w");
    idle(&w).await;
    let seq = rig.store().last_sequence("event", "g1").await.unwrap() as i64 + 1;
    let ghost = person("ghost", false);
    match rig.store().pool() {
        DbPool::Postgres(_) => {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(&rig.db.url).await.unwrap();
            conn.execute("BEGIN").await.unwrap();
            raw_insert_participant_added(&mut conn, "g1", seq, &ghost).await;
            conn.execute("ROLLBACK").await.unwrap();
        }
        DbPool::Sqlite(p) => {
            let participant = ParticipantInput::validate(ghost.input()).unwrap();
            let payload =
                serde_json::to_value(EventEvent::ParticipantAdded { participant }).unwrap();
            let mut tx = p.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES ('event', $1, $2, 'ParticipantAdded', '1', $3, '{}')",
            )
            .bind("g1")
            .bind(seq)
            .bind(payload.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.rollback().await.unwrap();
        }
    }
    rig.run_all(&[add("g1", "s2", true), deploy("g2", &[("s1", false)])])
        .await;
    idle(&w).await;
    rig.check();
    let status = saga::status(rig.store()).await.unwrap();
    assert_eq!((status.lag, status.pending), (0, 0), "{status:?}");
    if backend == Backend::Postgres {
        let gaps = rig
            .scalar("SELECT MAX(position) - COUNT(*) FROM events")
            .await;
        assert!(gaps >= 1, "the rollback left a gap in the positions");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Unenrol or delete of something already gone.
// ---------------------------------------------------------------------------------------------

/// Someone removed by hand in Moodle before the saga unenrols them, students gone before the
/// event ends, and a course deleted by hand before the event is deleted: no failure, no
/// parking, and the facts are recorded as done (unenrolled, course deleted).
async fn already_gone_is_not_a_failure(backend: Backend) {
    let Some(mut rig) = Rig::new(backend, Faults::default()).await else {
        return;
    };
    rig.run(&deploy(
        "x1",
        &[("i1", true), ("s1", false), ("s2", false), ("s3", false)],
    ))
    .await;
    let w = rig.worker("w");
    idle(&w).await;
    let course = rig.recorded("x1").await.course_id.unwrap();
    let sim = &rig.sim;
    let user = |id: &str| {
        sim.snapshot()
            .users
            .values()
            .find(|u| u.email == format!("{id}@example.org"))
            .unwrap()
            .id
    };
    let (s1, s2) = (user("s1"), user("s2"));
    rig.sim.unenrol_directly(s1, course);
    rig.run(&remove("x1", "s1")).await;
    idle(&w).await;
    rig.sim.unenrol_directly(s2, course);
    rig.run(&end("x1")).await;
    idle(&w).await;
    rig.check();
    assert!(rig.sim.delete_course_directly(course));
    rig.run(&delete("x1")).await;
    idle(&w).await;
    rig.check();
    let facts = rig.facts("x1").await;
    let bad: Vec<_> = facts
        .iter()
        .filter(|f| {
            matches!(
                f,
                MoodleSyncEvent::StepFailed { .. } | MoodleSyncEvent::Parked { .. }
            )
        })
        .collect();
    assert!(bad.is_empty(), "failures recorded: {bad:?}");
    assert!(
        facts
            .iter()
            .any(|f| matches!(f, MoodleSyncEvent::CourseDeleted { .. })),
        "the deletion is recorded: {facts:?}"
    );
    assert!(rig.recorded("x1").await.course_deleted);
}

// ---------------------------------------------------------------------------------------------
// 10. Rebuild replay: no Moodle call.
// ---------------------------------------------------------------------------------------------

/// After a whole lifecycle, rebuilding the read models (the views crate's `replay`, then the
/// binary's `openvle-moodle replay` configured with the live Moodle) makes no Moodle call at
/// all, and the rebuilt views agree with the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn rebuild_replay_makes_no_moodle_call() {
    let mut rig = Rig::new(Backend::Sqlite, Faults::default()).await.unwrap();
    rig.run_all(&[
        deploy("v1", &[("i1", true), ("s1", false)]),
        deploy("v2", &[("i2", true), ("s2", false)]),
        add("v1", "s3", false),
        end("v2"),
        deploy("v3", &[("i3", true)]),
        delete("v3"),
    ])
    .await;
    idle(&rig.worker("w")).await;
    rig.check();
    rig.sim.reset_calls();

    // The worker's settings: the view compares the course's category with them.
    let view_settings = settings();
    let report = views::replay(
        rig.store(),
        &view_settings,
        &views::ReplayOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert!(report.events > 0);
    for id in ["v1", "v2", "v3"] {
        let view = views::read::event_view(rig.store(), id)
            .await
            .unwrap()
            .expect("rebuilt view");
        assert_eq!(
            view.moodle.state,
            projections::view::MoodleState::InSync,
            "{id}: {view:?}"
        );
    }

    let mut args = vec!["--database-url".to_string(), rig.db.url.clone()];
    for m in [
        "MOODLE_ENABLED=true".to_string(),
        format!("MOODLE_URL={}", rig.sim.url()),
        format!("MOODLE_TOKEN={}", rig.sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        "MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true".into(),
    ] {
        args.push("--moodle".into());
        args.push(m);
    }
    args.extend(["replay".to_string(), "--json".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let proc = support::binary::Proc::new(Vec::new(), dir.path().join("replay.log"));
    let (status, out, err) = proc.run_once(&args);
    assert!(status.success(), "replay: {status}\n{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["moodle_calls"], 0, "{out}");
    assert!(
        rig.sim.calls().is_empty(),
        "replay called Moodle: {:?}",
        rig.sim.call_counts()
    );
    rig.check();
}

// ---------------------------------------------------------------------------------------------
// 11. Reconcile after a wipe.
// ---------------------------------------------------------------------------------------------

/// Moodle is wiped (a brand-new site: only the seed, new ids): `openvle-moodle reconcile
/// --apply` brings it back to what the log says, recording the new course ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn reconcile_after_a_wipe_restores_moodle() {
    let mut rig = Rig::new(Backend::Sqlite, Faults::default()).await.unwrap();
    rig.run_all(&[
        deploy("w1", &[("i1", true), ("s1", false)]),
        deploy("w2", &[("i2", true), ("s1", false), ("s2", false)]),
        end("w2"),
    ])
    .await;
    idle(&rig.worker("w")).await;
    rig.check();
    let old = rig.recorded("w1").await.course_id.unwrap();
    rig.sim.wipe();

    let mut args = vec!["--database-url".to_string(), rig.db.url.clone()];
    for m in [
        "MOODLE_ENABLED=true".to_string(),
        format!("MOODLE_URL={}", rig.sim.url()),
        format!("MOODLE_TOKEN={}", rig.sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        "MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true".into(),
    ] {
        args.push("--moodle".into());
        args.push(m);
    }
    args.extend(["reconcile".to_string(), "--apply".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let proc = support::binary::Proc::new(Vec::new(), dir.path().join("reconcile.log"));
    let (status, out, err) = proc.run_once(&args);
    assert!(status.success(), "reconcile: {status}\n{out}\n{err}");
    // Whatever reconcile leaves to the saga, a worker finishes it.
    idle(&rig.worker("w")).await;
    rig.check();
    let new = rig.recorded("w1").await.course_id.unwrap();
    assert_ne!(new, old, "the new course id is recorded");
}

// ---------------------------------------------------------------------------------------------
// 13. One event whose Moodle step always fails while others proceed.
// ---------------------------------------------------------------------------------------------

/// With a worker running continuously and 20 % of answers lost, one event's course loses its
/// manual enrolment instance (every enrolment into it fails): that event parks with the
/// reason while the other events' additions, removals and end go through; once the course is
/// fixed, a retry resumes it and Moodle ends as the table says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn one_poisoned_event_while_others_proceed() {
    let mut rig = Rig::new(
        Backend::Sqlite,
        Faults {
            latency_ms: 2,
            ..Faults::default()
        },
    )
    .await
    .unwrap();
    let w = rig.worker("w");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(w.clone().run(async {
        let _ = rx.await;
    }));
    rig.run_all(&[
        deploy("poison", &[("pi", true), ("ps", false)]),
        deploy("ok1", &[("oi", true), ("os", false), ("ps", false)]),
        deploy("ok2", &[("qi", true), ("qs", false)]),
    ])
    .await;
    let store = rig.store().clone();
    eventually("first deployment", || {
        let snapshot = rig.sim.snapshot();
        let store = store.clone();
        let model = rig.model.clone();
        async move {
            let s = saga::status(&store).await.map_err(|e| e.to_string())?;
            if s.lag > 0 || s.pending > 0 {
                return Err(format!("{s:?}"));
            }
            model.check(&snapshot)
        }
    })
    .await;
    rig.sim.update_faults(|f| f.lose_response_rate = 0.2);
    let course = rig.recorded("poison").await.course_id.unwrap();
    assert!(rig.sim.set_manual_enrol(course, false));
    rig.run_all(&[
        add("poison", "px", false),
        add("ok1", "ox", false),
        remove("ok1", "os"),
        add("ok2", "qx", true),
        end("ok2"),
    ])
    .await;
    eventually("the others converge while the poisoned one parks", || {
        let snapshot = rig.sim.snapshot();
        let store = store.clone();
        let model = rig.model.clone();
        async move {
            model.check_event(&snapshot, "ok1")?;
            model.check_event(&snapshot, "ok2")?;
            let s = saga::status(&store).await.map_err(|e| e.to_string())?;
            if s.parked
                .iter()
                .map(|p| p.event_id.as_str())
                .collect::<Vec<_>>()
                != ["poison"]
            {
                return Err(format!("parked: {:?}", s.parked));
            }
            Ok(())
        }
    })
    .await;
    let s = saga::status(rig.store()).await.unwrap();
    assert!(s.parked[0].reason.is_some(), "{:?}", s.parked);
    // The poisoned event's course is as it was: px not enrolled.
    assert!(rig
        .model
        .check_event(&rig.sim.snapshot(), "poison")
        .is_err());

    // Fixed by hand, resumed by an operator.
    rig.sim.update_faults(|f| f.lose_response_rate = 0.0);
    assert!(rig.sim.set_manual_enrol(course, true));
    assert!(saga::retry(rig.store(), "poison", "operator")
        .await
        .unwrap());
    w.wake();
    eventually("the resumed event converges", || {
        let snapshot = rig.sim.snapshot();
        let store = store.clone();
        let model = rig.model.clone();
        async move {
            let s = saga::status(&store).await.map_err(|e| e.to_string())?;
            if s.lag > 0 || s.pending > 0 || !s.parked.is_empty() {
                return Err(format!("{s:?}"));
            }
            model.check(&snapshot)
        }
    })
    .await;
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn moodle_times_out_but_applied_sqlite() {
    moodle_times_out_but_applied(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn moodle_times_out_but_applied_postgres() {
    moodle_times_out_but_applied(Backend::Postgres).await
}

both_backends!(
    #[cfg_attr(
        not(feature = "slow"),
        ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
    )]
    abort_right_after_a_record,
    crash_after_commit_before_dispatch,
    crash_after_read_before_call,
    crash_after_moodle_applied_before_record,
    crash_after_record_before_done_mark,
    rolled_back_append_leaves_a_harmless_gap,
    already_gone_is_not_a_failure,
);
