//! Courses shaped the way sites run them (issue 12), against the simulator and the real Moodle of
//! `../shared/moodle-lab` (categories 3 "Runs" and 4 "Archive" on both): an environment with its
//! own category, name templates and `at_start` visibility deploys an event whose course has
//! exactly the names, category, dates and visibility asked for; it follows a rename, becomes
//! visible at the start, moves to the archive at the end; a course moved and renamed by hand is
//! drift and put back; a course someone else made under the event's shortname is never adopted.
//!
//! The saga runs in process with a manual clock, so "the start" comes when the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use domain::course::{CourseShape, CourseVisibility};
use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{DeployContext, EventCommand, EventPatch, Schedule, VleEvent};
use domain::moodle_sync::MoodleSync;
use domain::participant::ParticipantInput;
use moodle::{Course, CourseField, CourseUpdate, EnrolledFilter};
use projections::saga::SagaSettings;
use saga::{ManualClock, ReconcileMode, SagaConfig, Worker};
use store::{CommandMeta, Store};

use super::identity::harness::{sites, Site};

const RUNS: i64 = 3;
const ARCHIVE: i64 = 4;

struct Rig {
    category: i64,
    store: Store,
    worker: Worker,
    clock: ManualClock,
}

async fn rig(site: &Site, shape: CourseShape) -> Rig {
    let store = Store::connect(&store::testing::fresh_sqlite_url())
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let settings = SagaSettings {
        enabled: true,
        category_id: site.category,
        ..SagaSettings::disabled()
    };
    let config = SagaConfig {
        poll_interval: Duration::from_millis(20),
        worker_id: "course-shape".into(),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        clock: saga::Clock::Manual(clock.clone()),
        ..SagaConfig::default()
    };
    let worker = Worker::new(store.clone(), Some(site.client.clone()), settings, config);
    store
        .execute::<Environment>(
            "env",
            EnvironmentCommand::Put {
                id: "env".into(),
                name: "Networks".into(),
                moodle_template_course_id: Some(site.template),
                course: shape,
            },
            &CommandMeta::new("test"),
        )
        .await
        .unwrap();
    Rig {
        category: site.category,
        store,
        worker,
        clock,
    }
}

impl Rig {
    async fn command(&self, id: &str, c: EventCommand) {
        self.store
            .execute::<VleEvent>(id, c, &CommandMeta::new("test"))
            .await
            .unwrap();
    }

    async fn deploy(
        &self,
        id: &str,
        name: &str,
        schedule: Schedule,
        people: Vec<ParticipantInput>,
    ) {
        let environment = self
            .store
            .load::<Environment>("env")
            .await
            .unwrap()
            .map(|(e, _)| e);
        let context = DeployContext {
            today: "2026-12-02".into(),
            course_defaults: Some(domain::course::CourseDefaults {
                category_id: Some(self.category),
                ..Default::default()
            }),
        };
        let deploy = EventCommand::Deploy {
            id: id.into(),
            environment_id: "env".into(),
            name: name.into(),
            participants: people,
            environment,
            schedule,
            context,
        };
        self.command(id, deploy).await;
    }

    /// Waits (the saga runs in the background) until `event`'s record satisfies `done`.
    async fn until(
        &self,
        event: &str,
        what: &str,
        done: impl Fn(&MoodleSync) -> bool,
    ) -> MoodleSync {
        for _ in 0..1200 {
            let r = self.recorded(event).await;
            if done(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = self.recorded(event).await;
        let work = saga::status(&self.store).await.ok();
        panic!("{event}: never {what}; work: {work:?}; record: {r:#?}");
    }

    async fn recorded(&self, id: &str) -> MoodleSync {
        self.store
            .load::<MoodleSync>(id)
            .await
            .unwrap()
            .map(|(r, _)| r)
            .unwrap_or_default()
    }
}

/// Runs the saga in the background for as long as the test holds the handle.
fn run_saga(worker: &Worker) -> tokio::task::JoinHandle<()> {
    let w = worker.clone();
    tokio::spawn(async move {
        loop {
            let _ = w.run_until_idle().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn person(id: &str, role: &str, tag: &str) -> ParticipantInput {
    ParticipantInput {
        id: id.into(),
        email: format!("{id}.{tag}@shape.example"),
        username: None,
        first_name: "Cora".into(),
        last_name: "Shape".into(),
        role: role.into(),
        idnumber: None,
    }
}

/// The course `id` as Moodle shows it now.
pub(super) async fn course(site: &Site, id: i64) -> Course {
    let found = site
        .client
        .get_courses_by_field(CourseField::Id, &id.to_string())
        .await
        .unwrap();
    found
        .into_iter()
        .find(|c| c.id == id)
        .expect("the course exists")
}

const HOUR: i64 = 3600;

#[tokio::test]
async fn an_environments_course_shape_is_followed_through_the_events_life() {
    for site in sites("course_shape::an_environments_course_shape_is_followed").await {
        let shape = CourseShape {
            category_id: Some(RUNS),
            fullname_template: Some("{environment_name}: {event_name} ({starts_on})".into()),
            shortname_template: Some("NET-{event_short_id}-{year}".into()),
            idnumber_template: None,
            visibility: Some(CourseVisibility::AtStart),
            archive_category_id: Some(ARCHIVE),
        };
        let r = rig(&site, shape).await;
        let event = uuid::Uuid::new_v4().to_string();
        let short = &event[..8];
        let tag = &event[..8];
        let start = r.clock.now_ms() / 1000 + 2 * HOUR;
        // Whole minutes, as Moodle's date fields would show them.
        let start = start - start % 60;
        let schedule = Schedule {
            starts_at: Some(start),
            ends_at: Some(start + 48 * HOUR),
        };
        let saga = run_saga(&r.worker);
        let people = vec![
            person("t1", "instructor", tag),
            person("s1", "student", tag),
        ];
        r.deploy(&event, "Routing lab", schedule, people).await;

        // Deployed: the names, category, dates asked for; hidden until the start.
        let rec = r
            .until(&event, "shaped and enrolled", |m| {
                m.course_props.idnumber.is_some()
                    && m.course_props.startdate.is_some()
                    && m.participants
                        .values()
                        .filter(|p| p.enrolment.is_some())
                        .count()
                        == 2
            })
            .await;
        let id = rec.course_id.unwrap();
        let c = course(&site, id).await;
        let day = domain::course::day_of(start).unwrap();
        assert_eq!(
            c.shortname,
            format!("NET-{short}-{}", &day[..4]),
            "{}",
            site.name
        );
        assert_eq!(
            c.fullname,
            format!("Networks: Routing lab ({day})"),
            "{}",
            site.name
        );
        assert_eq!(
            c.idnumber.as_deref(),
            Some(&*format!("ovle-{event}")),
            "{}",
            site.name
        );
        assert_eq!(c.categoryid, RUNS, "{}", site.name);
        assert_eq!(c.startdate, Some(start), "{}", site.name);
        assert_eq!(c.enddate, Some(start + 48 * HOUR), "{}", site.name);
        assert_eq!(
            c.visible,
            Some(false),
            "{}: hidden before the start",
            site.name
        );

        // Renamed and re-dated: the course follows.
        let patch = EventPatch {
            name: Some("Switching lab".into()),
            starts_at: None,
            ends_at: Some(Some(start + 72 * HOUR)),
            template_course_id: None,
        };
        r.command(&event, EventCommand::Change { patch }).await;
        r.until(&event, "renamed", |m| {
            m.course_props
                .fullname
                .as_deref()
                .is_some_and(|f| f.contains("Switching"))
                && m.course_props.enddate == Some(start + 72 * HOUR)
        })
        .await;
        let c = course(&site, id).await;
        assert_eq!(
            c.fullname,
            format!("Networks: Switching lab ({day})"),
            "{}",
            site.name
        );
        assert_eq!(c.enddate, Some(start + 72 * HOUR), "{}", site.name);

        // The start comes: shown.
        r.clock.set(start * 1000 + 1000);
        r.until(&event, "shown at the start", |m| {
            m.course_visible == Some(true)
        })
        .await;
        assert_eq!(course(&site, id).await.visible, Some(true), "{}", site.name);

        // Moved and renamed by hand: drift, reported, then put back.
        let hand = CourseUpdate {
            id,
            shortname: Some(format!("HAND-{short}")),
            category_id: Some(site.category),
            ..CourseUpdate::default()
        };
        assert!(site
            .client
            .update_courses(&[hand])
            .await
            .unwrap()
            .is_empty());
        let report = r
            .worker
            .reconcile(Some(&event), ReconcileMode::DryRun)
            .await
            .unwrap();
        let kinds: Vec<String> = report
            .drift
            .iter()
            .map(|d| format!("{} {}", d.note.kind.as_str(), d.note.what))
            .collect();
        assert!(
            kinds.contains(&"course_shape course shortname".to_string()),
            "{}: {kinds:?}",
            site.name
        );
        assert!(
            kinds.contains(&"course_shape course category".to_string()),
            "{}: {kinds:?}",
            site.name
        );
        let applied = r
            .worker
            .reconcile(Some(&event), ReconcileMode::Apply)
            .await
            .unwrap();
        assert!(
            applied.remaining.is_empty(),
            "{}: {:?}",
            site.name,
            applied.remaining
        );
        let c = course(&site, id).await;
        assert_eq!(
            (c.shortname.as_str(), c.categoryid),
            (&*format!("NET-{short}-{}", &day[..4]), RUNS),
            "{}",
            site.name
        );

        // Ended: the student out, hidden, archived.
        r.command(&event, EventCommand::End).await;
        let rec = r
            .until(&event, "archived", |m| {
                m.course_props.category_id == Some(ARCHIVE) && m.course_visible == Some(false)
            })
            .await;
        let c = course(&site, id).await;
        assert_eq!(
            (c.categoryid, c.visible),
            (ARCHIVE, Some(false)),
            "{}",
            site.name
        );
        let left = site
            .client
            .get_enrolled_users(id, EnrolledFilter::OnlyActive)
            .await
            .unwrap();
        let t1 = rec.participants["t1"].moodle_user_id.unwrap();
        assert_eq!(
            left.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![t1],
            "{}",
            site.name
        );
        saga.abort();
        if site.name != "simulator" {
            let _ = site.client.delete_courses(&[id]).await;
        }
    }
}

#[tokio::test]
async fn a_course_someone_else_made_under_the_shortname_is_never_adopted() {
    for site in sites("course_shape::a_course_someone_else_made").await {
        // The template's own shortname, through {event_name}.
        let template = course(&site, site.template).await;
        let shape = CourseShape {
            shortname_template: Some("{event_name}".into()),
            ..CourseShape::default()
        };
        let r = rig(&site, shape).await;
        let event = uuid::Uuid::new_v4().to_string();
        let saga = run_saga(&r.worker);
        r.deploy(&event, &template.shortname, Schedule::default(), vec![])
            .await;
        let rec = r.until(&event, "parked", |m| m.parked.is_some()).await;
        saga.abort();
        let (_, code, reason) = rec.parked.clone().unwrap();
        assert_eq!(code, "course_shortname_taken", "{}", site.name);
        assert!(
            reason.contains(&format!("course {}", site.template)),
            "{}: {reason}",
            site.name
        );
        assert_eq!(rec.course_id, None, "{}: nothing adopted", site.name);
        let again = course(&site, site.template).await;
        assert_eq!(
            again.idnumber, template.idnumber,
            "{}: the template untouched",
            site.name
        );
    }
}
