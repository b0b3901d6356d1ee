//! Course duplications run one at a time per process (`OPENVLE_SAGA_MAX_DUPLICATIONS`, 1): on
//! the real Moodle two at once collided in its file area and its context table and left a course
//! without enrolment methods, which the saga then adopted and could never enrol anyone into.
//! Here four events are deployed at once to a worker that processes four at a time, and the
//! simulator's record of the duplication calls shows none overlapping another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moodle_sim::{Faults, SimConfig, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use projections::saga::SagaSettings;
use saga::{SagaConfig, Worker};
use support::lifecycle::{execute, Cmd, Person};
use support::real_moodle::client_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplications_never_overlap_while_events_are_processed_at_once() {
    let sim = Simulator::start_local(SimConfig {
        faults: Faults {
            duplicate_latency_ms: 200,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let store = store::Store::connect(&store::testing::fresh_sqlite_url())
        .await
        .unwrap();
    let env = Cmd::Environment {
        id: "lab".into(),
        template: Some(TEMPLATE_COURSE_ID),
    };
    execute(&store, &env).await.unwrap();
    for i in 0..4 {
        let deploy = Cmd::Deploy {
            event: format!("e{i}"),
            env: "lab".into(),
            people: vec![Person::new(
                &format!("p{i}"),
                &format!("p{i}@example.org"),
                true,
            )],
        };
        execute(&store, &deploy).await.unwrap();
    }
    let config = SagaConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        worker_id: "pacing".into(),
        ..SagaConfig::default()
    };
    assert_eq!(config.max_duplications, 1, "the default");
    let worker = Worker::new(
        store.clone(),
        Some(client_for(&sim.url(), &sim.token())),
        SagaSettings::enabled(EVENTS_CATEGORY_ID),
        config,
    );
    tokio::time::timeout(Duration::from_secs(120), worker.run_until_idle())
        .await
        .expect("idle")
        .unwrap();
    let mut calls: Vec<_> = sim
        .calls()
        .into_iter()
        .filter(|c| c.function == "core_course_duplicate_course")
        .collect();
    assert_eq!(calls.len(), 4, "one duplication per event");
    calls.sort_by_key(|c| c.at_ms);
    for pair in calls.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            b.at_ms >= a.at_ms + a.duration_ms,
            "duplication {} began at {} while {} ran from {} for {} ms",
            b.seq,
            b.at_ms,
            a.seq,
            a.at_ms,
            a.duration_ms
        );
    }
    sim.shutdown().await;
}
