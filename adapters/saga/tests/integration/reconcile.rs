//! Reconcile against the simulator: hand-made drift, a wiped Moodle, and the saga's gaps.
//! SQLite always; PostgreSQL too when OPENVLE_TEST_PG is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::*;
use domain::event::EventCommand;
use domain::moodle_sync::{DriftKind, MoodleSync, MoodleSyncEvent};
use moodle_sim::{Faults, LostKind, ScriptedFault, TransientKind};
use saga::{ReconcileMode, ReconcileReport, RemovalMode, SagaConfig, SagaSettings, Worker};

async fn recorded(env: &Env, id: &str) -> MoodleSync {
    env.store
        .load::<MoodleSync>(id)
        .await
        .unwrap()
        .map(|(s, _)| s)
        .unwrap_or_default()
}

async fn sync_events(env: &Env, id: &str) -> Vec<MoodleSyncEvent> {
    env.store
        .read_stream("moodle_sync", id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.decode::<MoodleSync>().unwrap())
        .collect()
}

async fn reconcile(w: &Worker, event: Option<&str>, mode: ReconcileMode) -> ReconcileReport {
    tokio::time::timeout(Duration::from_secs(120), w.reconcile(event, mode))
        .await
        .expect("reconcile did not finish in time")
        .unwrap()
}

fn kinds(report: &ReconcileReport, event: &str) -> Vec<(DriftKind, String)> {
    let mut v: Vec<(DriftKind, String)> = report
        .drift
        .iter()
        .filter(|r| r.event_id == event)
        .map(|r| (r.note.kind, r.note.what.clone()))
        .collect();
    v.sort();
    v
}

fn del_settings() -> SagaSettings {
    SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    }
}

/// live: deployed (t1, s1, s2); ended: ended (t2, s3); gone: deleted with course deletion.
async fn three_events(env: &Env, w: &Worker) {
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy(
        "live",
        "env1",
        vec![
            person("t1", "instructor"),
            person("s1", "student"),
            person("s2", "student"),
        ],
    )
    .await;
    env.deploy(
        "ended",
        "env1",
        vec![person("t2", "instructor"), person("s3", "student")],
    )
    .await;
    env.event("ended", EventCommand::End).await;
    env.deploy("gone", "env1", vec![person("s4", "student")])
        .await;
    idle(w).await;
    env.event("gone", EventCommand::Delete).await;
    idle(w).await;
    assert!(env.course("gone").is_none());
    let clean = reconcile(w, None, ReconcileMode::DryRun).await;
    assert!(clean.is_clean(), "{}", clean.render_table());
    assert_eq!(clean.checked, 3);
}

fn user_id(env: &Env, email: &str) -> i64 {
    env.sim
        .snapshot()
        .users
        .values()
        .find(|u| u.email == email)
        .unwrap()
        .id
}

async fn hand_made_drift(env: Env) {
    let w = env.worker(del_settings(), "w1");
    three_events(&env, &w).await;
    let live = env.course("live").unwrap();
    let ended = env.course("ended").unwrap();

    // By hand: s1 unenrolled, t1 suspended; the ended course shown again; s3 enrolled again.
    env.sim
        .unenrol_directly(user_id(&env, "s1@example.org"), live.id);
    env.sim.with_state(|s| {
        s.enrolments
            .get_mut(&live.id)
            .unwrap()
            .values_mut()
            .find(|e| e.roles == [3])
            .unwrap()
            .suspended = true;
    });
    assert!(env.sim.set_course_visible(ended.id, true));
    // s3 was never linked (the event ended before the saga ran): an account made by hand.
    let s3 = env
        .sim
        .create_user_directly("s3", "s3@example.org", "First", "Last s3")
        .id;
    env.sim.with_state(|s| {
        s.enrolments.entry(ended.id).or_default().insert(
            s3,
            moodle_sim::SimEnrolment {
                user_id: s3,
                course_id: ended.id,
                suspended: false,
                roles: vec![5],
            },
        );
    });

    // Dry run: shows everything, changes nothing (Moodle and the log).
    let before = env.sim.snapshot();
    let head = env.store.head().await.unwrap();
    let dry = reconcile(&w, None, ReconcileMode::DryRun).await;
    assert_eq!(
        kinds(&dry, "live"),
        [
            (DriftKind::Enrolment, "enrolment of s1".to_string()),
            (DriftKind::Enrolment, "enrolment of t1".to_string()),
        ],
        "{}",
        dry.render_table()
    );
    assert_eq!(
        kinds(&dry, "ended"),
        [
            (DriftKind::CourseVisibility, "course visibility".to_string()),
            (DriftKind::Enrolment, "enrolment of s3".to_string()),
        ]
    );
    assert!(!dry.is_clean());
    let table = dry.render_table();
    assert!(
        table.contains("EXPECTED") && table.contains("enrolment of s1"),
        "{table}"
    );
    assert!(serde_json::to_value(&dry).unwrap()["drift"][0]["expected"].is_string());
    assert_eq!(env.sim.snapshot(), before, "a dry run changed Moodle");
    assert_eq!(env.store.head().await.unwrap(), head, "a dry run wrote");

    // Apply: fixed, each correction recorded with its cause.
    let applied = reconcile(&w, None, ReconcileMode::Apply).await;
    assert_eq!(applied.drift.len(), 4, "{}", applied.render_table());
    assert!(applied.remaining.is_empty(), "{}", applied.render_table());
    let e = env.enrolments(live.id);
    assert_eq!(e["s1@example.org"], (vec![5], false));
    assert_eq!(e["t1@example.org"], (vec![3], false));
    assert_eq!(e["s2@example.org"], (vec![5], false));
    assert!(!env.course("ended").unwrap().visible);
    let e = env.enrolments(ended.id);
    assert!(!e.contains_key("s3@example.org"), "{e:?}");
    assert_eq!(e["t2@example.org"], (vec![3], false));

    let story = sync_events(&env, "live").await;
    let observed = story
        .iter()
        .position(|e| matches!(e, MoodleSyncEvent::DriftObserved { applied: true, drift, .. } if drift.len() == 2))
        .expect("DriftObserved recorded");
    // The corrections right after it: what Moodle held (s1 out, t1 suspended).
    assert!(
        matches!(
            &story[observed + 1..observed + 3],
            [
                MoodleSyncEvent::Suspended { participant_id: a, .. },
                MoodleSyncEvent::Unenrolled { participant_id: b, .. },
            ] if a == "t1" && b == "s1"
        ),
        "{:?}",
        &story[observed..]
    );
    assert!(story[observed..].iter().any(|e| matches!(
        e,
        MoodleSyncEvent::Enrolled { participant_id, caused_by, .. }
            if participant_id == "s1" && *caused_by == domain::event_id_of("event", "live", 1)
    )));
    assert!(matches!(
        story.last(),
        Some(MoodleSyncEvent::DriftObserved { drift, .. }) if drift.is_empty()
    ));

    // Nothing left.
    let again = reconcile(&w, None, ReconcileMode::DryRun).await;
    assert!(again.is_clean(), "{}", again.render_table());
    let head = env.store.head().await.unwrap();
    let applied = reconcile(&w, None, ReconcileMode::Apply).await;
    assert!(applied.drift.is_empty());
    assert_eq!(env.store.head().await.unwrap(), head, "a clean apply wrote");

    // A course deleted by hand: created again from its template, everyone enrolled again.
    assert!(env.sim.delete_course_directly(live.id));
    let applied = reconcile(&w, Some("live"), ReconcileMode::Apply).await;
    assert_eq!(
        kinds(&applied, "live"),
        [(DriftKind::CourseMissing, "course".to_string())]
    );
    assert!(applied.remaining.is_empty(), "{}", applied.render_table());
    let new = env.course("live").expect("course created again");
    assert_ne!(new.id, live.id);
    assert!(new.visible);
    assert_eq!(recorded(&env, "live").await.course_id, Some(new.id));
    assert_eq!(env.enrolments(new.id).len(), 3);
    assert!(reconcile(&w, None, ReconcileMode::DryRun).await.is_clean());
    assert_eq!(env.users_by_email().values().max(), Some(&1));
}

#[tokio::test]
async fn dry_run_shows_hand_made_drift_and_apply_fixes_it_sqlite() {
    hand_made_drift(sqlite_env(Faults::default()).await).await;
}

#[tokio::test]
async fn dry_run_shows_hand_made_drift_and_apply_fixes_it_postgres() {
    let Some(env) = pg_env(Faults::default()).await else {
        return;
    };
    hand_made_drift(env).await;
}

async fn wiped(env: Env) {
    let w = env.worker(del_settings(), "w1");
    three_events(&env, &w).await;
    let old_live = env.course("live").unwrap().id;
    let old_ended = env.course("ended").unwrap().id;

    env.sim.wipe();
    let before = env.sim.snapshot();
    let dry = reconcile(&w, None, ReconcileMode::DryRun).await;
    let live = kinds(&dry, "live");
    assert!(
        live.contains(&(DriftKind::CourseMissing, "course".into())),
        "{live:?}"
    );
    assert_eq!(
        live.iter()
            .filter(|(k, _)| *k == DriftKind::Account)
            .count(),
        3,
        "{}",
        dry.render_table()
    );
    assert!(kinds(&dry, "gone").is_empty());
    assert_eq!(env.sim.snapshot(), before);

    let applied = reconcile(&w, None, ReconcileMode::Apply).await;
    assert!(applied.remaining.is_empty(), "{}", applied.render_table());

    // Every course re-created from its template with the new id recorded, every enrolment back.
    let live = env.course("live").expect("live re-created");
    assert_ne!(live.id, old_live);
    assert!(live.visible);
    assert_eq!(recorded(&env, "live").await.course_id, Some(live.id));
    let e = env.enrolments(live.id);
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(e["t1@example.org"], (vec![3], false));
    assert_eq!(e["s1@example.org"], (vec![5], false));
    assert_eq!(e["s2@example.org"], (vec![5], false));
    // Ended: hidden, instructors only.
    let ended = env.course("ended").expect("ended re-created");
    assert_ne!(ended.id, old_ended);
    assert!(!ended.visible);
    assert_eq!(recorded(&env, "ended").await.course_id, Some(ended.id));
    let e = env.enrolments(ended.id);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e["t2@example.org"], (vec![3], false));
    // Deleted with course deletion: still no course.
    assert!(env.course("gone").is_none());
    assert_eq!(env.users_by_email().values().max(), Some(&1));

    let again = reconcile(&w, None, ReconcileMode::DryRun).await;
    assert!(again.is_clean(), "{}", again.render_table());
    // The worker has nothing left to do either.
    env.sim.reset_calls();
    idle(&w).await;
    assert!(
        env.sim.call_counts().is_empty(),
        "{:?}",
        env.sim.call_counts()
    );
}

#[tokio::test]
async fn a_wiped_moodle_is_rebuilt_sqlite() {
    wiped(sqlite_env(Faults::default()).await).await;
}

#[tokio::test]
async fn a_wiped_moodle_is_rebuilt_postgres() {
    let Some(env) = pg_env(Faults::default()).await else {
        return;
    };
    wiped(env).await;
}

/// A deleted event's course that is back (restored from a backup) is deleted again.
#[tokio::test]
async fn a_restored_course_of_a_deleted_event_is_deleted_again() {
    let env = sqlite_env(Faults::default()).await;
    let w = env.worker(del_settings(), "w1");
    three_events(&env, &w).await;
    env.sim.with_state(|s| {
        let id = s.next_course_id;
        s.next_course_id += 1;
        s.courses.insert(
            id,
            moodle_sim::SimCourse {
                id,
                shortname: "ovle-gone".into(),
                fullname: "restored".into(),
                categoryid: moodle_sim::EVENTS_CATEGORY_ID,
                visible: true,
                idnumber: String::new(),
                manual_enrol: true,
                startdate: 0,
                enddate: 0,
            },
        );
    });
    let applied = reconcile(&w, Some("gone"), ReconcileMode::Apply).await;
    assert_eq!(
        kinds(&applied, "gone"),
        [(DriftKind::CourseExists, "course".to_string())]
    );
    assert!(applied.remaining.is_empty(), "{}", applied.render_table());
    assert!(env.course("gone").is_none());
}

/// The scheduled reconcile without apply: the drift shows in the record (the view), Moodle is
/// left alone; fixed by hand, the drift clears.
#[tokio::test]
async fn report_mode_records_drift_without_fixing() {
    let env = sqlite_env(Faults::default()).await;
    let w = env.worker(del_settings(), "w1");
    three_events(&env, &w).await;
    let live = env.course("live").unwrap();
    let s1 = user_id(&env, "s1@example.org");
    env.sim.unenrol_directly(s1, live.id);
    let r = reconcile(&w, None, ReconcileMode::Report).await;
    assert_eq!(r.drift.len(), 1);
    assert!(!env.enrolments(live.id).contains_key("s1@example.org"));
    let drift = recorded(&env, "live").await.drift;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].participant_id.as_deref(), Some("s1"));
    // The same drift again: nothing new written.
    let head = env.store.head().await.unwrap();
    reconcile(&w, None, ReconcileMode::Report).await;
    assert_eq!(env.store.head().await.unwrap(), head);
    // The worker does not fix it either (report only).
    idle(&w).await;
    assert!(!env.enrolments(live.id).contains_key("s1@example.org"));
    // Fixed by hand: cleared.
    env.sim.with_state(|s| {
        s.enrolments.get_mut(&live.id).unwrap().insert(
            s1,
            moodle_sim::SimEnrolment {
                user_id: s1,
                course_id: live.id,
                suspended: false,
                roles: vec![5],
            },
        );
    });
    let r = reconcile(&w, None, ReconcileMode::Report).await;
    assert!(r.is_clean());
    assert!(recorded(&env, "live").await.drift.is_empty());
}

/// The scheduled reconcile runs inside `Worker::run` and fixes when configured to.
#[tokio::test]
async fn scheduled_reconcile_applies_when_configured() {
    let env = sqlite_env(Faults::default()).await;
    let w = env.worker(del_settings(), "w1");
    three_events(&env, &w).await;
    let live = env.course("live").unwrap();
    env.sim
        .unenrol_directly(user_id(&env, "s2@example.org"), live.id);
    let cfg = SagaConfig {
        reconcile: Some(saga::ReconcileSchedule {
            interval: Duration::from_millis(100),
            apply: true,
        }),
        ..config("sched")
    };
    let worker = Worker::new(
        env.store.clone(),
        Some(env.client.clone()),
        del_settings(),
        cfg,
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !env.enrolments(live.id).contains_key("s2@example.org") {
        assert!(tokio::time::Instant::now() < deadline, "not fixed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    run.await.unwrap().unwrap();
}

// ---- the saga's gaps ----

/// (a) An enrol whose answer was lost (recorded as a failure), then the participant's removal
/// before the retry: the stale enrolment is removed (both removal modes), and the same for
/// students at End.
async fn unknown_enrol_then_removal(mode: RemovalMode, end: bool) {
    let env = sqlite_env(Faults::default()).await;
    let s = SagaSettings {
        removal_mode: mode,
        ..settings()
    };
    let w = Worker::new(
        env.store.clone(),
        Some(env.client.clone()),
        s,
        SagaConfig {
            backoff_base: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            ..config("gap-a")
        },
    );
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy(
        "ev",
        "env1",
        vec![person("t1", "instructor"), person("s1", "student")],
    )
    .await;
    env.sim.push_fault(
        Some("enrol_manual_enrol_users"),
        ScriptedFault::Lost {
            how: LostKind::Http502,
        },
    );
    w.feed().await.unwrap();
    let state = w.process_event("ev").await.unwrap().unwrap();
    assert_eq!(state.state, "retrying", "{state:?}");
    let course = env.course("ev").unwrap();
    // Moodle applied it; the saga does not know.
    assert_eq!(env.enrolments(course.id).len(), 2);
    assert!(recorded(&env, "ev").await.participants["s1"]
        .enrolment
        .is_none());

    if end {
        env.event("ev", EventCommand::End).await;
    } else {
        env.remove("ev", "s1").await;
    }
    w.feed().await.unwrap();
    let state = w.process_event("ev").await.unwrap().unwrap();
    assert!(state.done, "{state:?}");
    let e = env.enrolments(course.id);
    match mode {
        RemovalMode::Unenrol => assert!(!e.contains_key("s1@example.org"), "{e:?}"),
        RemovalMode::Suspend => assert_eq!(e["s1@example.org"], (vec![5], true)),
    }
    assert_eq!(e["t1@example.org"], (vec![3], false));
}

#[tokio::test]
async fn gap_a_unknown_enrol_then_removal_unenrol_mode() {
    unknown_enrol_then_removal(RemovalMode::Unenrol, false).await;
}

#[tokio::test]
async fn gap_a_unknown_enrol_then_removal_suspend_mode() {
    unknown_enrol_then_removal(RemovalMode::Suspend, false).await;
}

#[tokio::test]
async fn gap_a_unknown_enrol_then_end() {
    unknown_enrol_then_removal(RemovalMode::Unenrol, true).await;
}

/// (a) in suspend mode, a participant the saga never saw enrolled is not enrolled by the
/// suspension (looked at first).
#[tokio::test]
async fn gap_a_suspend_mode_never_enrols_someone_absent() {
    let env = sqlite_env(Faults::default()).await;
    let s = SagaSettings {
        removal_mode: RemovalMode::Suspend,
        ..settings()
    };
    let w = Worker::new(
        env.store.clone(),
        Some(env.client.clone()),
        s,
        SagaConfig {
            backoff_base: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            ..config("gap-a2")
        },
    );
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy("ev", "env1", vec![person("s1", "student")])
        .await;
    // The enrol fails without effect (the saga does not know that).
    env.sim.push_fault(
        Some("enrol_manual_enrol_users"),
        ScriptedFault::Transient {
            how: TransientKind::Http503,
        },
    );
    w.feed().await.unwrap();
    w.process_event("ev").await.unwrap();
    let course = env.course("ev").unwrap();
    assert!(env.enrolments(course.id).is_empty());
    env.remove("ev", "s1").await;
    w.feed().await.unwrap();
    let state = w.process_event("ev").await.unwrap().unwrap();
    assert!(state.done, "{state:?}");
    assert!(
        env.enrolments(course.id).is_empty(),
        "suspending enrolled someone absent"
    );
}

/// (b) A course whose creation answer was lost and never recorded, on an event then deleted
/// with course deletion on: found by shortname and deleted.
#[tokio::test]
async fn gap_b_unrecorded_course_of_a_deleted_event_is_deleted() {
    let env = sqlite_env(Faults::default()).await;
    let w = Worker::new(
        env.store.clone(),
        Some(env.client.clone()),
        del_settings(),
        SagaConfig {
            backoff_base: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            ..config("gap-b")
        },
    );
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy("ev", "env1", vec![person("s1", "student")])
        .await;
    // What a duplication whose answer was lost, and whose look-up after it failed too, leaves:
    // the course in Moodle, only a failure in the record.
    env.sim.with_state(|s| {
        let id = s.next_course_id;
        s.next_course_id += 1;
        s.courses.insert(
            id,
            moodle_sim::SimCourse {
                id,
                shortname: "ovle-ev".into(),
                fullname: "Event ev".into(),
                categoryid: moodle_sim::EVENTS_CATEGORY_ID,
                visible: true,
                idnumber: String::new(),
                manual_enrol: true,
                startdate: 0,
                enddate: 0,
            },
        );
    });
    env.store
        .execute::<MoodleSync>(
            "ev",
            domain::moodle_sync::MoodleSyncCommand::Record(vec![MoodleSyncEvent::StepFailed {
                step: "ensure_course".into(),
                code: "http_502".into(),
                message: "lost".into(),
                attempt: 1,
                transient: true,
                participant_id: None,
                caused_by: domain::event_id_of("event", "ev", 1),
            }]),
            &store::CommandMeta::new("test"),
        )
        .await
        .unwrap();
    assert!(env.course("ev").is_some());
    assert!(recorded(&env, "ev").await.course_id.is_none());

    env.event("ev", EventCommand::Delete).await;
    w.feed().await.unwrap();
    let state = w.process_event("ev").await.unwrap().unwrap();
    assert!(state.done, "{state:?}");
    assert!(
        env.course("ev").is_none(),
        "the unrecorded course was left behind"
    );
    assert!(recorded(&env, "ev").await.course_deleted);
}

/// (c) Transient failures are not retried for ever: parked after `max_attempts`, with the reason.
#[tokio::test]
async fn gap_c_transient_failures_park_after_max_attempts() {
    let env = sqlite_env(Faults::default()).await;
    let w = Worker::new(
        env.store.clone(),
        Some(env.client.clone()),
        settings(),
        SagaConfig {
            max_attempts: 3,
            ..config("gap-c")
        },
    );
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy("ev", "env1", vec![person("s1", "student")])
        .await;
    env.sim.update_faults(|f| {
        f.transient_error_rate = 1.0;
        f.transient_kind = TransientKind::Http503;
    });
    idle(&w).await;
    let sync = recorded(&env, "ev").await;
    let (step, _, reason) = sync.parked.expect("parked");
    assert_eq!(step, "ensure_course");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    let status = saga::status(&env.store).await.unwrap();
    assert_eq!(status.parked.len(), 1);
    assert!(status.parked[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("3 times"));
    // Moodle back, an operator resumes: done.
    env.sim.update_faults(|f| f.transient_error_rate = 0.0);
    assert!(saga::retry(&env.store, "ev", "op").await.unwrap());
    idle(&w).await;
    assert!(env.course("ev").is_some());
}

/// (d) The integration switched on later: events deployed while it was off are provisioned by
/// the first enabled worker.
async fn gap_d_events_deployed_while_disabled_are_provisioned_when_enabled_on(env: Env) {
    let off = env.worker(SagaSettings::disabled(), "off");
    env.environment("env1", Some(TEMPLATE)).await;
    env.deploy("early", "env1", vec![person("s1", "student")])
        .await;
    idle(&off).await;
    assert!(env.sim.call_counts().is_empty());
    assert_eq!(saga::status(&env.store).await.unwrap().lag, 0);

    let on = env.worker(settings(), "on");
    idle(&on).await;
    let course = env.course("early").expect("provisioned once enabled");
    assert_eq!(
        env.enrolments(course.id)["s1@example.org"],
        (vec![5], false)
    );
}

#[tokio::test]
async fn gap_d_events_deployed_while_disabled_are_provisioned_when_enabled() {
    gap_d_events_deployed_while_disabled_are_provisioned_when_enabled_on(
        sqlite_env(Faults::default()).await,
    )
    .await;
}

#[tokio::test]
async fn gap_d_events_deployed_while_disabled_are_provisioned_when_enabled_postgres() {
    let Some(env) = pg_env(Faults::default()).await else {
        return;
    };
    let url = env.db_url.clone();
    gap_d_events_deployed_while_disabled_are_provisioned_when_enabled_on(env).await;
    store::testing::drop_pg_database(&url).await;
}
