//! The harness of the identity cases: each Moodle they run against (the simulator, and the real
//! site when configured), an engine (store and worker in process) and reads of Moodle's state
//! through its own web services.

use std::time::Duration;

use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, VleEvent};
use domain::moodle_sync::{MoodleSync, MoodleSyncEvent};
use domain::participant::{ParticipantInput, ParticipantPatch};
use moodle::{MoodleClient, MoodleUser, UserField};
use moodle_sim::{SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use projections::saga::SagaSettings;
use saga::{SagaConfig, Worker};
use store::{CommandMeta, Store};
use support::real_moodle::{client_for, create_account, RealMoodle};

/// One Moodle the cases run against.
pub struct Site {
    pub name: &'static str,
    pub client: MoodleClient,
    pub template: i64,
    pub category: i64,
    /// Keeps the simulator running.
    _sim: Option<SimHandle>,
}

pub async fn sites(test: &str) -> Vec<Site> {
    let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
    let client = client_for(&sim.url(), &sim.token());
    let mut out = vec![Site {
        name: "simulator",
        client,
        template: TEMPLATE_COURSE_ID,
        category: EVENTS_CATEGORY_ID,
        _sim: Some(sim),
    }];
    if let Some(real) = RealMoodle::from_env(test) {
        real.wait_until_up().await;
        out.push(Site {
            name: "real Moodle",
            client: real.client(),
            template: real.template,
            category: real.category,
            _sim: None,
        });
    }
    out
}

/// The engine: a fresh store and a worker with `settings`.
pub struct Engine {
    pub store: Store,
    pub worker: Worker,
}

impl Engine {
    pub async fn start(site: &Site, settings: SagaSettings) -> Engine {
        let store = Store::connect(&store::testing::fresh_sqlite_url())
            .await
            .unwrap();
        let settings = SagaSettings {
            category_id: site.category,
            ..settings
        };
        let config = SagaConfig {
            poll_interval: Duration::from_millis(20),
            worker_id: "identity".into(),
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(40),
            ..SagaConfig::default()
        };
        let worker = Worker::new(store.clone(), Some(site.client.clone()), settings, config);
        let e = Engine { store, worker };
        e.store
            .execute::<Environment>(
                "env",
                EnvironmentCommand::Put {
                    course: Default::default(),
                    id: "env".into(),
                    name: "Env".into(),
                    moodle_template_course_id: Some(site.template),
                },
                &CommandMeta::new("test"),
            )
            .await
            .unwrap();
        e
    }

    pub async fn command(&self, event: &str, command: EventCommand) {
        self.store
            .execute::<VleEvent>(event, command, &CommandMeta::new("test"))
            .await
            .unwrap();
    }

    pub async fn deploy(&self, event: &str, people: Vec<ParticipantInput>) {
        let environment = self
            .store
            .load::<Environment>("env")
            .await
            .unwrap()
            .map(|(e, _)| e);
        self.command(
            event,
            EventCommand::Deploy {
                context: Default::default(),
                schedule: Default::default(),
                id: event.into(),
                environment_id: "env".into(),
                name: format!("Identity {event}"),
                participants: people,
                environment,
            },
        )
        .await;
        self.run().await;
    }

    pub async fn patch(&self, event: &str, participant: &str, json: &str) {
        let patch: ParticipantPatch = serde_json::from_str(json).unwrap();
        self.command(
            event,
            EventCommand::ChangeParticipant {
                participant_id: participant.into(),
                patch,
            },
        )
        .await;
        self.run().await;
    }

    pub async fn run(&self) {
        self.worker.run_until_idle().await.unwrap();
    }

    pub async fn recorded(&self, event: &str) -> MoodleSync {
        self.store
            .load::<MoodleSync>(event)
            .await
            .unwrap()
            .map(|(s, _)| s)
            .unwrap_or_default()
    }

    /// The saga's facts of `event`, in order.
    pub async fn facts(&self, event: &str) -> Vec<MoodleSyncEvent> {
        self.store
            .read_stream("moodle_sync", event)
            .await
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.payload).unwrap())
            .collect()
    }
}

pub fn person(tag: &str, id: &str, role: &str) -> ParticipantInput {
    ParticipantInput {
        id: id.into(),
        email: format!("{id}.{tag}@uni.example"),
        username: None,
        first_name: "Ida".into(),
        last_name: "Entity".into(),
        role: role.into(),
        idnumber: None,
    }
}

pub async fn make_account(site: &Site, username: &str, email: &str, idnumber: Option<&str>) -> i64 {
    create_account(&site.client, username, email, idnumber).await
}

pub async fn user(site: &Site, field: UserField, value: &str) -> Option<MoodleUser> {
    let found = site
        .client
        .get_users_by_field(field, &[value.to_string()])
        .await
        .unwrap();
    found.into_iter().next()
}

/// Who is enrolled in `event`'s course, with their roles.
pub async fn enrolled(site: &Site, e: &Engine, event: &str) -> Vec<(i64, Vec<i64>)> {
    let course = e.recorded(event).await.course_id.expect("a course");
    let mut out: Vec<(i64, Vec<i64>)> = site
        .client
        .get_enrolled_users(course, moodle::EnrolledFilter::All)
        .await
        .unwrap()
        .into_iter()
        .map(|u| {
            let mut roles: Vec<i64> = u.roles.iter().map(|r| r.roleid).collect();
            roles.sort();
            (u.id, roles)
        })
        .collect();
    out.sort();
    out
}

pub fn parked_code(r: &MoodleSync, participant: &str) -> Option<String> {
    r.participant(participant)?
        .parked
        .as_ref()
        .map(|p| p.0.clone())
}
