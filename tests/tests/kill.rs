//! The real `openvle-moodle serve` as a child process, SIGKILLed and restarted at random (seeded)
//! points while OpenVLE core drives a whole lifecycle over HTTP and the Moodle simulator loses 30 %
//! of its responses after applying the call; and SIGTERM in the middle of a batch.
//!
//! What it proves (issue 4, "Done when"; design notes: crash points, SIGTERM mid-batch):
//! - durable delivery: every committed command reaches Moodle although the process dies at any
//!   point (during start-up, between commit and dispatch, mid-call, between a Moodle effect and
//!   its record, between a record and the work row's done mark);
//! - exactly-once effects: at the end Moodle holds exactly what the seed's table says (one
//!   course per event, one account per person, the right enrolments, hidden when ended, gone
//!   when deleted), and no course was ever duplicated twice;
//! - the audit chain survives the kills (`audit verify` exits 0);
//! - SIGTERM lets the batch in hand finish and be recorded, exits 0, and a restart completes
//!   the work with no repeated effect.
//!
//! `OPENVLE_KILL_SEED=<n>` replays one seed (default 7). PostgreSQL: set `OPENVLE_TEST_PG`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::moodle_sync::{EnrolmentState, MoodleSync};
use moodle::sim::{Faults, LostKind, SimConfig, SimHandle, Simulator, TEMPLATE_COURSE_ID};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::Value;
use support::binary::{free_port, Proc};
use support::lifecycle::{Cmd, Model, Person};

const DEADLINE: Duration = Duration::from_secs(180);

fn seed() -> u64 {
    std::env::var("OPENVLE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

/// `serve` on `port` over `db_url`, talking to `sim`.
fn serve_proc(db_url: &str, sim: &SimHandle, port: u16, dir: &std::path::Path) -> Proc {
    let mut args: Vec<String> = vec![
        "--database-url".into(),
        db_url.into(),
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--worker-id".into(),
        "w1".into(),
        "--concurrency".into(),
        "4".into(),
        // Retries spaced for a test (30 % of answers are lost), and never parked for it.
        "--retry-base-ms".into(),
        "100".into(),
        "--retry-max-ms".into(),
        "2000".into(),
        "--max-attempts".into(),
        "0".into(),
    ];
    for m in moodle_flags(sim) {
        args.push("--moodle".into());
        args.push(m);
    }
    Proc::new(args, dir.join("engine.log"))
}

fn moodle_flags(sim: &SimHandle) -> Vec<String> {
    vec![
        "MOODLE_ENABLED=true".into(),
        format!("MOODLE_URL={}", sim.url()),
        format!("MOODLE_TOKEN={}", sim.token()),
        "MOODLE_COURSE_CATEGORY_ID=2".into(),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        "MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true".into(),
    ]
}

/// A deterministic UUID from the seeded generator (event ids must be UUIDs).
fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(port: u16) -> Http {
        Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Status and JSON body, or None when the engine cannot be reached (killed, restarting).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.ok()?;
        let status = resp.status();
        let bytes = resp.bytes().await.ok()?;
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn get(&self, path: &str) -> Option<(StatusCode, Value)> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Whether `cmd` already took effect (None: the engine is not answering).
    async fn applied(&self, cmd: &Cmd) -> Option<bool> {
        if let Cmd::Environment { id, template } = cmd {
            let (status, body) = self.get(&format!("/api/v1/environments/{id}")).await?;
            return match status {
                StatusCode::OK => Some(
                    body["moodle_template_course_id"].as_i64() == *template
                        || body["environment"]["moodle_template_course_id"].as_i64() == *template,
                ),
                StatusCode::NOT_FOUND => Some(false),
                _ => None,
            };
        }
        let event = cmd.event().unwrap();
        let (status, view) = self.get(&format!("/api/v1/events/{event}")).await?;
        if status == StatusCode::NOT_FOUND {
            return Some(false);
        }
        if status != StatusCode::OK {
            return None;
        }
        let has = |pid: &str| {
            view["participants"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["id"] == pid))
        };
        let status = view["status"].as_str().unwrap_or("");
        Some(match cmd {
            Cmd::Environment { .. } => unreachable!(),
            Cmd::Deploy { .. } => true,
            Cmd::Add { person, .. } => has(&person.id),
            Cmd::Remove { participant, .. } => !has(participant),
            Cmd::End { .. } => status == "ended" || status == "deleted",
            Cmd::Delete { .. } => status == "deleted",
        })
    }

    async fn send(&self, cmd: &Cmd) -> Option<(StatusCode, Value)> {
        use reqwest::Method;
        match cmd {
            Cmd::Environment { id, template } => {
                let body = serde_json::json!({
                    "name": format!("Environment {id}"),
                    "moodle_template_course_id": template,
                });
                self.call(
                    Method::PUT,
                    &format!("/api/v1/environments/{id}"),
                    Some(&body),
                )
                .await
            }
            Cmd::Deploy { event, env, people } => {
                let body = serde_json::json!({
                    "id": event,
                    "environment_id": env,
                    "name": format!("Lab {event}"),
                    "participants": people.iter().map(Person::json).collect::<Vec<_>>(),
                });
                self.call(Method::POST, "/api/v1/events", Some(&body)).await
            }
            Cmd::Add { event, person } => {
                self.call(
                    Method::POST,
                    &format!("/api/v1/events/{event}/participants"),
                    Some(&person.json()),
                )
                .await
            }
            Cmd::Remove { event, participant } => {
                self.call(
                    Method::DELETE,
                    &format!("/api/v1/events/{event}/participants/{participant}"),
                    None,
                )
                .await
            }
            Cmd::End { event } => {
                self.call(Method::POST, &format!("/api/v1/events/{event}/end"), None)
                    .await
            }
            Cmd::Delete { event } => {
                self.call(Method::DELETE, &format!("/api/v1/events/{event}"), None)
                    .await
            }
        }
    }

    /// Sends `cmd` until it took effect once: a request cut by a kill is looked up (through the
    /// view) before it is sent again, never blindly repeated.
    async fn ensure(&self, cmd: &Cmd, proc: &Mutex<Proc>) {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "{cmd:?} never took effect; engine log:\n{}",
                proc.lock().unwrap().log_tail(40)
            );
            match self.applied(cmd).await {
                Some(true) => return,
                Some(false) => match self.send(cmd).await {
                    Some((StatusCode::ACCEPTED, _)) => return,
                    Some((status, body)) if status.is_client_error() => {
                        panic!("{cmd:?} refused: {status} {body}")
                    }
                    _ => {}
                },
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Polls until every event's Moodle state is final (`in_sync`, or `not_linked`); returns
    /// the views and how many operator retries were sent.
    ///
    /// The binary's retry delays are the production ones (1 s doubling to 300 s, not settable
    /// from its command line), and with 30 % of *every* answer lost (look-ups included) an
    /// event can meet several failures in a row and wait minutes for its next attempt. So an
    /// event still pending after 5 s gets what an operator would send, `POST
    /// /api/v1/events/{id}/moodle/retry` ("try now": it queues the event at once and records
    /// nothing when the event is not parked), at most every 3 s. That shortens waits only: the
    /// saga still decides everything from the log and Moodle.
    async fn converge(&self, model: &Model, proc: &Mutex<Proc>) -> (BTreeMap<String, Value>, u32) {
        let started = Instant::now();
        let mut last_poke = Instant::now();
        let mut pokes = 0u32;
        loop {
            let mut views = BTreeMap::new();
            let mut waiting = Vec::new();
            let mut pending = Vec::new();
            for (id, e) in &model.events {
                let want = if e.linked { "in_sync" } else { "not_linked" };
                match self.get(&format!("/api/v1/events/{id}")).await {
                    Some((StatusCode::OK, v)) => {
                        if v["moodle"]["state"] != want {
                            waiting.push(format!("{id}: {}", v["moodle"]));
                            pending.push(id.clone());
                        }
                        views.insert(id.clone(), v);
                    }
                    other => waiting.push(format!("{id}: {other:?}")),
                }
            }
            if waiting.is_empty() {
                return (views, pokes);
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no convergence after {DEADLINE:?} ({pokes} operator retries):\n{}\nengine log:\n{}",
                waiting.join("\n"),
                proc.lock().unwrap().log_tail(60)
            );
            if started.elapsed() > Duration::from_secs(5)
                && last_poke.elapsed() > Duration::from_secs(3)
            {
                last_poke = Instant::now();
                for id in &pending {
                    let path = format!("/api/v1/events/{id}/moodle/retry");
                    if let Some((StatusCode::ACCEPTED, _)) =
                        self.call(reqwest::Method::POST, &path, None).await
                    {
                        pokes += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The scenario: two environments (one linked to the template, one not), five events sharing
/// participants, one person already in Moodle under an email in another case, and every phase.
fn scenario(rng: &mut StdRng) -> (Vec<Cmd>, Vec<String>) {
    let ev: Vec<String> = (0..5).map(|_| uuid(rng)).collect();
    let p = |i: usize| {
        Person::new(
            &format!("u{i}"),
            &format!("u{i}@example.org"),
            matches!(i, 0 | 7 | 14),
        )
    };
    let deploy = |e: usize, env: &str, ids: &[usize]| Cmd::Deploy {
        event: ev[e].clone(),
        env: env.into(),
        people: ids.iter().map(|&i| p(i)).collect(),
    };
    let add = |e: usize, i: usize| Cmd::Add {
        event: ev[e].clone(),
        person: p(i),
    };
    let remove = |e: usize, i: usize| Cmd::Remove {
        event: ev[e].clone(),
        participant: format!("u{i}"),
    };
    let end = |e: usize| Cmd::End {
        event: ev[e].clone(),
    };
    let delete = |e: usize| Cmd::Delete {
        event: ev[e].clone(),
    };
    let cmds = vec![
        Cmd::Environment {
            id: "lab".into(),
            template: Some(TEMPLATE_COURSE_ID),
        },
        Cmd::Environment {
            id: "plain".into(),
            template: None,
        },
        deploy(0, "lab", &[0, 1, 2, 3, 4]),
        deploy(1, "lab", &[7, 1, 3, 5, 6]),
        deploy(2, "lab", &[0, 8, 9]),
        deploy(3, "lab", &[7, 10, 2]),
        deploy(4, "plain", &[0, 11]),
        add(0, 5),
        add(0, 14),
        remove(0, 2),
        add(1, 9),
        remove(1, 3),
        end(1),
        add(2, 10),
        end(2),
        delete(2),
        delete(3),
        add(4, 1),
        end(4),
        remove(0, 3),
        add(0, 2),
        add(0, 12),
    ];
    (cmds, ev)
}

/// The SIGKILL run on `db_url`.
async fn sigkill_lifecycle(db_url: String, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start_local(SimConfig {
        seed,
        faults: Faults {
            lose_response_rate: 0.3,
            lost_kind: LostKind::Http502,
            latency_ms: 15,
            duplicate_latency_ms: 120,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let (cmds, _events) = scenario(&mut rng);
    let mut model = Model::default();
    // u4 is already in Moodle, with an email in another case and the username the engine
    // would derive: it must be matched, not duplicated.
    sim.create_user_directly("u4", "U4@Example.ORG", "Pre", "Existing");
    model.preexisting.insert("u4@example.org".into());
    for c in &cmds {
        assert!(model.apply(c), "the scenario is valid: {c:?}");
    }

    let port = free_port();
    let proc = Arc::new(Mutex::new(serve_proc(&db_url, &sim, port, dir.path())));
    proc.lock().unwrap().start();
    let http = Http::new(port);

    // Chaos: SIGKILL and restart at seeded random intervals, during the commands and after them
    // (while the saga converges), at least `min_kills` times.
    let stop = Arc::new(AtomicBool::new(false));
    let min_kills = 14u32;
    let chaos = {
        let proc = proc.clone();
        let stop = stop.clone();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut kills = 0u32;
            while kills < min_kills || !stop.load(Ordering::Acquire) {
                let pause = rng.gen_range(80..700);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let mut p = proc.lock().unwrap();
                p.kill();
                p.start();
                kills += 1;
            }
            kills
        })
    };
    for c in &cmds {
        http.ensure(c, &proc).await;
        // Let some saga work start between commands, so kills land in every phase.
        let pause = rng.gen_range(0..150);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let t0 = Instant::now();
    stop.store(true, Ordering::Release);
    let kills = chaos.await.unwrap();
    proc.lock().unwrap().start();
    let t1 = t0.elapsed();
    let (views, pokes) = http.converge(&model, &proc).await;
    println!(
        "seed {seed}: commands done; chaos over after {t1:?}, converged after {:?} \
         ({pokes} operator retries)",
        t0.elapsed()
    );
    let snapshot = sim.snapshot();
    if let Err(diff) = model.check(&snapshot) {
        panic!(
            "seed {seed}: Moodle differs from the table after {kills} kills:\n{diff}\nviews: {views:#?}"
        );
    }
    // No event was ever duplicated twice (a retry after a lost answer or a kill looks first).
    // Course ids are never reused, so the simulator's next id counts every course ever made,
    // including those of deleted events and calls whose answer never reached the log.
    let counts = sim.call_counts();
    let linked = model.events.values().filter(|e| e.linked).count() as i64;
    let made = snapshot.next_course_id - 3;
    assert!(
        made <= linked,
        "{made} courses made for {linked} linked events: {counts:?}"
    );
    let lost = sim
        .calls()
        .iter()
        .filter(|c| c.outcome.starts_with("lost"))
        .count();
    assert!(lost > 0, "responses were lost: {counts:?}");
    // The views agree with Moodle: course ids recorded are the ones in Moodle.
    for (id, v) in &views {
        let course = snapshot
            .courses
            .values()
            .find(|c| c.shortname == format!("ovle-{id}"));
        if let Some(c) = course {
            assert_eq!(v["moodle"]["course_id"].as_i64(), Some(c.id), "{id}: {v}");
        }
    }

    // A clean stop, then the hash chain is whole despite the kills.
    let status = proc.lock().unwrap().terminate(Duration::from_secs(60));
    assert!(status.success(), "SIGTERM exit: {status}");
    let (status, out, err) = proc.lock().unwrap().run_once(&[
        "--database-url".into(),
        db_url.clone(),
        "audit".into(),
        "verify".into(),
    ]);
    assert!(status.success(), "audit verify: {status}\n{out}\n{err}");
    println!(
        "seed {seed}: {kills} SIGKILLs, {} starts, {lost} lost responses, calls {counts:?}",
        proc.lock().unwrap().starts
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_converges_exactly_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kill.db").display());
    sigkill_lifecycle(url, seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_converges_exactly_postgres() {
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    sigkill_lifecycle(db.url.clone(), seed()).await;
}

/// SIGTERM while Moodle calls are in flight: the engine exits 0, every effect Moodle holds is
/// recorded (the batch in hand finished and was written), no claim is left behind, and a
/// restart completes the work without repeating any effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_batch_exits_cleanly_and_a_restart_completes() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("term.db").display());
    let sim = Simulator::start_local(SimConfig {
        faults: Faults {
            latency_ms: 60,
            duplicate_latency_ms: 300,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let port = free_port();
    let proc = Mutex::new(serve_proc(&db_url, &sim, port, dir.path()));
    proc.lock().unwrap().start();
    let http = Http::new(port);

    let mut model = Model::default();
    let mut rng = StdRng::seed_from_u64(11);
    let mut cmds = vec![Cmd::Environment {
        id: "lab".into(),
        template: Some(TEMPLATE_COURSE_ID),
    }];
    for e in 0..6 {
        let event = uuid(&mut rng);
        cmds.push(Cmd::Deploy {
            event: event.clone(),
            env: "lab".into(),
            people: (0..8)
                .map(|i| {
                    Person::new(
                        &format!("t{e}-{i}"),
                        &format!("t{e}-{i}@example.org"),
                        i == 0,
                    )
                })
                .collect(),
        });
    }
    for c in &cmds {
        assert!(model.apply(c));
        http.ensure(c, &proc).await;
    }
    // Wait until Moodle work is under way (some calls answered, more in flight), then SIGTERM.
    let started = Instant::now();
    while sim.calls().len() < 3 {
        assert!(started.elapsed() < DEADLINE, "the saga never called Moodle");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = proc.lock().unwrap().terminate(Duration::from_secs(60));
    assert!(
        status.success(),
        "SIGTERM must stop cleanly (exit 0), got {status}; log:\n{}",
        proc.lock().unwrap().log_tail(40)
    );
    let calls_at_stop = sim.calls().len();
    assert!(
        calls_at_stop < 6 * 3,
        "the stop came before the work was done ({calls_at_stop} calls)"
    );

    // Everything Moodle holds is recorded, and no claim is left.
    {
        let store = store::Store::connect(&db_url).await.unwrap();
        let snapshot = sim.snapshot();
        for id in model.events.keys() {
            let Some(course) = snapshot.course_by_shortname(&format!("ovle-{id}")) else {
                continue;
            };
            let sync = store
                .load::<MoodleSync>(id)
                .await
                .unwrap()
                .map(|(s, _)| s)
                .unwrap_or_default();
            assert_eq!(
                sync.course_id,
                Some(course.id),
                "course {} of {id} exists in Moodle but was not recorded",
                course.id
            );
            let in_moodle = snapshot.enrolments.get(&course.id).map_or(0, |m| m.len());
            let recorded = sync
                .participants
                .values()
                .filter(|p| p.enrolment == Some(EnrolmentState::Enrolled))
                .count();
            assert_eq!(
                in_moodle, recorded,
                "{id}: {in_moodle} enrolments in Moodle, {recorded} recorded"
            );
        }
        let store::DbPool::Sqlite(pool) = store.pool() else {
            unreachable!()
        };
        let claimed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM saga_work WHERE claimed_by IS NOT NULL")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(claimed, 0, "a graceful stop hands every claim back");
        store.close().await;
    }

    // A restart completes the work, and nothing was done twice.
    proc.lock().unwrap().start();
    let (_, pokes) = http.converge(&model, &proc).await;
    assert_eq!(pokes, 0, "no fault injected here: no retry needed");
    model.check(&sim.snapshot()).unwrap();
    let counts = sim.call_counts();
    assert_eq!(
        counts.get("core_course_duplicate_course"),
        Some(&6),
        "{counts:?}"
    );
    assert_eq!(sim.snapshot().next_course_id - 3, 6, "six courses made");
    let created: usize = sim
        .calls()
        .iter()
        .filter(|c| c.function == "core_user_create_users" && c.outcome == "ok")
        .map(|c| c.batch_size)
        .sum();
    assert_eq!(created, 6 * 8, "each account created once: {counts:?}");
    let status = proc.lock().unwrap().terminate(Duration::from_secs(60));
    assert!(status.success());
    sim.shutdown().await;
}
