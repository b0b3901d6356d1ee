//! Shared set-up of the saga tests: a store (SQLite, or PostgreSQL when OPENVLE_TEST_PG is set),
//! the in-process Moodle simulator, and helpers to drive OpenVLE events through the domain.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, VleEvent};
use domain::participant::ParticipantInput;
use moodle::{ClientOptions, MoodleClient, Secret};
use moodle_sim::{Faults, SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use saga::{SagaConfig, SagaSettings, Worker};
use store::{CommandMeta, Store};

pub struct Env {
    pub store: Store,
    pub sim: SimHandle,
    pub client: MoodleClient,
    pub db_url: String,
}

pub async fn sim(faults: Faults) -> SimHandle {
    sim_with(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await
}

pub async fn sim_with(cfg: SimConfig) -> SimHandle {
    Simulator::start_local(cfg).await.unwrap()
}

/// Runs `w` until nothing is left to do (two minutes at most: a hang fails the test).
pub async fn idle(w: &Worker) -> saga::RunStats {
    tokio::time::timeout(Duration::from_secs(120), w.run_until_idle())
        .await
        .expect("the saga did not become idle in time")
        .unwrap()
}

pub fn client(sim: &SimHandle) -> MoodleClient {
    MoodleClient::from_parts(
        &sim.url(),
        Secret::new(sim.token()),
        ClientOptions {
            allow_insecure_http: true,
            timeout: Duration::from_secs(10),
            duplicate_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

pub async fn sqlite_env(faults: Faults) -> Env {
    sqlite_env_with(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await
}

/// A fresh SQLite store and a simulator configured as `cfg` says.
pub async fn sqlite_env_with(cfg: SimConfig) -> Env {
    let db_url = store::testing::fresh_sqlite_url();
    let store = Store::connect(&db_url).await.unwrap();
    let sim = sim_with(cfg).await;
    let client = client(&sim);
    Env {
        store,
        sim,
        client,
        db_url,
    }
}

pub async fn pg_env(faults: Faults) -> Option<Env> {
    let db_url = store::testing::fresh_pg_url().await?;
    let store = Store::connect(&db_url).await.unwrap();
    let sim = sim(faults).await;
    let client = client(&sim);
    Some(Env {
        store,
        sim,
        client,
        db_url,
    })
}

pub fn settings() -> SagaSettings {
    SagaSettings::enabled(EVENTS_CATEGORY_ID)
}

pub fn config(worker_id: &str) -> SagaConfig {
    SagaConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        worker_id: worker_id.to_string(),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        lease: Duration::from_secs(30),
        ..SagaConfig::default()
    }
}

impl Env {
    pub fn worker(&self, settings: SagaSettings, id: &str) -> Worker {
        Worker::new(
            self.store.clone(),
            Some(self.client.clone()),
            settings,
            config(id),
        )
    }

    pub async fn environment(&self, id: &str, template: Option<i64>) {
        self.store
            .execute::<Environment>(
                id,
                EnvironmentCommand::Put {
                    course: Default::default(),
                    id: id.into(),
                    name: format!("Environment {id}"),
                    moodle_template_course_id: template,
                },
                &CommandMeta::new("test"),
            )
            .await
            .unwrap();
    }

    pub async fn event(&self, id: &str, command: EventCommand) {
        self.store
            .execute::<VleEvent>(id, command, &CommandMeta::new("test"))
            .await
            .unwrap();
    }

    pub async fn deploy(&self, id: &str, env: &str, participants: Vec<ParticipantInput>) {
        let environment = self
            .store
            .load::<Environment>(env)
            .await
            .unwrap()
            .map(|(e, _)| e);
        self.event(
            id,
            EventCommand::Deploy {
                context: Default::default(),
                schedule: Default::default(),
                id: id.into(),
                environment_id: env.into(),
                name: format!("Event {id}"),
                participants,
                environment,
            },
        )
        .await;
    }

    pub async fn add(&self, id: &str, p: ParticipantInput) {
        self.event(id, EventCommand::AddParticipant { participant: p })
            .await;
    }

    pub async fn remove(&self, id: &str, participant_id: &str) {
        self.event(
            id,
            EventCommand::RemoveParticipant {
                participant_id: participant_id.into(),
            },
        )
        .await;
    }

    /// The course of event `id` in the simulator (by its shortname), and how many share it.
    pub fn courses_named(&self, shortname: &str) -> Vec<moodle_sim::SimCourse> {
        self.sim
            .snapshot()
            .courses
            .values()
            .filter(|c| c.shortname == shortname)
            .cloned()
            .collect()
    }

    pub fn course(&self, event_id: &str) -> Option<moodle_sim::SimCourse> {
        let mut v = self.courses_named(&format!("ovle-{event_id}"));
        assert!(v.len() <= 1, "two courses for {event_id}: {v:?}");
        v.pop()
    }

    /// email (lowercased) → (roles, suspended) of the course's enrolments.
    pub fn enrolments(&self, course_id: i64) -> BTreeMap<String, (Vec<i64>, bool)> {
        let s = self.sim.snapshot();
        s.enrolments
            .get(&course_id)
            .into_iter()
            .flat_map(|m| m.values())
            .map(|e| {
                let mut roles = e.roles.clone();
                roles.sort();
                (
                    s.users[&e.user_id].email.to_lowercase(),
                    (roles, e.suspended),
                )
            })
            .collect()
    }

    /// Users per lowercased email (more than one = a duplicate account).
    pub fn users_by_email(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for u in self.sim.snapshot().users.values() {
            *m.entry(u.email.to_lowercase()).or_insert(0) += 1;
        }
        m
    }
}

pub fn person(id: &str, role: &str) -> ParticipantInput {
    ParticipantInput {
        idnumber: None,
        id: id.into(),
        email: format!("{id}@example.org"),
        username: None,
        first_name: "First".into(),
        last_name: format!("Last {id}"),
        role: role.into(),
    }
}

pub const TEMPLATE: i64 = TEMPLATE_COURSE_ID;
