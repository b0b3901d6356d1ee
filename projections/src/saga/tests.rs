use cqrs_es::Aggregate;
use uuid::Uuid;

use domain::event::EventEvent;
use domain::moodle_sync::{EnrolmentState, MoodleSync, MoodleSyncEvent};
use domain::participant::{Participant, Role};

use super::*;

fn person(id: &str, role: Role) -> Participant {
    Participant {
        idnumber: None,
        id: id.into(),
        email: format!("{id}@example.org"),
        username: None,
        first_name: "First".into(),
        last_name: "Last".into(),
        role,
    }
}

fn deployed(template: Option<i64>, participants: Vec<Participant>) -> EventEvent {
    EventEvent::Deployed {
        course: Default::default(),
        schedule: Default::default(),
        id: "ev1".into(),
        environment_id: "env".into(),
        name: "Spring lab".into(),
        template_course_id: template,
        participants,
    }
}

/// A desired fold from events numbered 1, 2, ….
fn desired(events: Vec<EventEvent>) -> Desired {
    Desired::fold(
        "ev1",
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as u64 + 1, e)),
    )
}

fn settings() -> SagaSettings {
    SagaSettings::enabled(7)
}

fn cause(seq: u64) -> Cause {
    Cause::of("ev1", seq)
}

/// A stand-in for the runner and Moodle: runs the plan's first step, records its facts.
/// Returns the step run, or None once the plan is empty.
fn step_once(d: &Desired, r: &mut MoodleSync, s: &SagaSettings) -> Option<Step> {
    crate::tests::runner::step_once(d, r, s)
}

/// Runs until the plan is empty; returns the names of the steps run.
fn converge(d: &Desired, r: &mut MoodleSync, s: &SagaSettings) -> Vec<&'static str> {
    let mut names = Vec::new();
    while let Some(step) = step_once(d, r, s) {
        names.push(step.name());
        assert!(names.len() < 20, "the plan does not converge: {names:?}");
    }
    names
}

fn enrolment(r: &MoodleSync, id: &str) -> Option<(EnrolmentState, i64)> {
    r.participant(id)
        .and_then(|p| Some((p.enrolment?, p.role_id?)))
}

#[test]
fn disabled_and_not_linked_produce_nothing() {
    let d = desired(vec![deployed(Some(42), vec![person("a", Role::Student)])]);
    let p = plan(&d, &MoodleSync::default(), &SagaSettings::disabled());
    assert_eq!(p.state, SyncState::Disabled);
    assert!(p.is_empty());

    let d = desired(vec![deployed(None, vec![person("a", Role::Student)])]);
    let p = plan(&d, &MoodleSync::default(), &settings());
    assert_eq!(p.state, SyncState::NotLinked);
    assert!(p.is_empty());
    // Still nothing once ended or deleted.
    let d = desired(vec![
        deployed(None, vec![person("a", Role::Student)]),
        EventEvent::Ended,
        EventEvent::Deleted,
    ]);
    assert!(plan(&d, &MoodleSync::default(), &settings()).is_empty());
    // Never deployed: nothing either.
    assert!(plan(&Desired::new("x"), &MoodleSync::default(), &settings()).is_empty());
}

#[test]
fn deploy_plans_course_and_one_link_batch_then_one_enrol_batch() {
    let d = desired(vec![deployed(
        Some(42),
        vec![
            person("t", Role::Instructor),
            person("s1", Role::Student),
            person("s2", Role::Student),
        ],
    )]);
    let mut r = MoodleSync::default();
    let p = plan(&d, &r, &settings());
    assert_eq!(p.state, SyncState::Pending);
    assert_eq!(p.steps.len(), 2);
    match &p.steps[0] {
        Step::EnsureCourse(e) => {
            assert_eq!(e.shortname, "ovle-ev1");
            assert_eq!(e.fullname, "Spring lab");
            assert_eq!(e.template_course_id, 42);
            assert_eq!(e.category_id, 7);
            assert!(e.visible);
            assert_eq!(e.cause, cause(1));
        }
        other => panic!("{other:?}"),
    }
    match &p.steps[1] {
        Step::LinkUsers(l) => {
            assert_eq!(l.field, UserMatchField::Email);
            assert_eq!(l.auth, "manual");
            let ids: Vec<_> = l.users.iter().map(|u| u.participant_id.as_str()).collect();
            assert_eq!(ids, ["t", "s1", "s2"]);
            assert_eq!(l.users[1].key, "s1@example.org");
            assert_eq!(
                l.users[1].new_username.as_ref().map(|n| n.name.as_str()),
                Ok("s1")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["ensure_course", "link_users", "enrol"]
    );
    assert_eq!(enrolment(&r, "t"), Some((EnrolmentState::Enrolled, 3)));
    assert_eq!(enrolment(&r, "s1"), Some((EnrolmentState::Enrolled, 5)));
    assert_eq!(enrolment(&r, "s2"), Some((EnrolmentState::Enrolled, 5)));
    assert_eq!(plan(&d, &r, &settings()).state, SyncState::InSync);
}

#[test]
fn enrol_is_one_batch_with_mapped_roles() {
    let d = desired(vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), person("s", Role::Student)],
    )]);
    let mut r = MoodleSync::default();
    step_once(&d, &mut r, &settings());
    step_once(&d, &mut r, &settings());
    let p = plan(&d, &r, &settings());
    assert_eq!(p.steps.len(), 1);
    match &p.steps[0] {
        Step::Enrol { course_id, items } => {
            assert_eq!(*course_id, 100);
            let v: Vec<_> = items
                .iter()
                .map(|i| (i.participant_id.as_str(), i.role_id))
                .collect();
            assert_eq!(v, [("t", 3), ("s", 5)]);
        }
        other => panic!("{other:?}"),
    }
    // Custom role ids.
    let custom = SagaSettings {
        instructor_role_id: 4,
        student_role_id: 9,
        ..settings()
    };
    let mut r2 = MoodleSync::default();
    converge(&d, &mut r2, &custom);
    assert_eq!(enrolment(&r2, "t"), Some((EnrolmentState::Enrolled, 4)));
    assert_eq!(enrolment(&r2, "s"), Some((EnrolmentState::Enrolled, 9)));
}

#[test]
fn coalesced_burst_of_adds_is_one_batch_and_redelivery_is_the_same_plan() {
    let base = vec![deployed(Some(42), vec![person("t", Role::Instructor)])];
    let d0 = desired(base.clone());
    let mut r = MoodleSync::default();
    converge(&d0, &mut r, &settings());

    let mut events = base;
    for i in 0..25 {
        events.push(EventEvent::ParticipantAdded {
            participant: person(&format!("n{i}"), Role::Student),
        });
    }
    let d = desired(events.clone());
    let p = plan(&d, &r, &settings());
    assert_eq!(p.steps.len(), 1);
    match &p.steps[0] {
        Step::LinkUsers(l) => {
            assert_eq!(l.users.len(), 25);
            assert_eq!(l.users[0].cause, cause(2));
            assert_eq!(l.users[24].cause, cause(26));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.steps[0].cause(), cause(26));
    // Level-triggered: the same desired state (a redelivery) plans the same thing.
    assert_eq!(plan(&desired(events), &r, &settings()), p);

    assert_eq!(converge(&d, &mut r, &settings()), ["link_users", "enrol"]);
    for i in 0..25 {
        assert_eq!(
            enrolment(&r, &format!("n{i}")),
            Some((EnrolmentState::Enrolled, 5))
        );
    }
}

#[test]
fn remove_then_re_add() {
    let mut events = vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), person("s", Role::Student)],
    )];
    let mut r = MoodleSync::default();
    converge(&desired(events.clone()), &mut r, &settings());

    events.push(EventEvent::ParticipantRemoved {
        participant: person("s", Role::Student),
    });
    let d = desired(events.clone());
    let p = plan(&d, &r, &settings());
    match &p.steps[..] {
        [Step::Remove {
            course_id: 100,
            mode: RemovalMode::Unenrol,
            items,
        }] => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].participant_id, "s");
            assert_eq!(items[0].cause, cause(2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(converge(&d, &mut r, &settings()), ["unenrol"]);
    assert_eq!(enrolment(&r, "s"), Some((EnrolmentState::Unenrolled, 5)));

    // Back again: enrolled with the link already recorded, no look-up.
    events.push(EventEvent::ParticipantAdded {
        participant: person("s", Role::Student),
    });
    let d = desired(events.clone());
    assert_eq!(converge(&d, &mut r, &settings()), ["enrol"]);
    assert_eq!(enrolment(&r, "s"), Some((EnrolmentState::Enrolled, 5)));

    // Removed and re-added before the saga saw either: nothing to do (coalesced).
    events.push(EventEvent::ParticipantRemoved {
        participant: person("s", Role::Student),
    });
    events.push(EventEvent::ParticipantAdded {
        participant: person("s", Role::Student),
    });
    assert!(plan(&desired(events), &r, &settings()).is_empty());
}

#[test]
fn suspend_mode_and_re_activation() {
    let s = SagaSettings {
        removal_mode: RemovalMode::Suspend,
        ..settings()
    };
    let mut events = vec![deployed(Some(42), vec![person("s", Role::Student)])];
    let mut r = MoodleSync::default();
    converge(&desired(events.clone()), &mut r, &s);
    events.push(EventEvent::ParticipantRemoved {
        participant: person("s", Role::Student),
    });
    assert_eq!(converge(&desired(events.clone()), &mut r, &s), ["suspend"]);
    assert_eq!(enrolment(&r, "s"), Some((EnrolmentState::Suspended, 5)));
    events.push(EventEvent::ParticipantAdded {
        participant: person("s", Role::Student),
    });
    let d = desired(events);
    match &plan(&d, &r, &s).steps[..] {
        [Step::Enrol { items, .. }] => assert_eq!(items[0].cause, cause(3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(converge(&d, &mut r, &s), ["enrol"]);
    assert_eq!(enrolment(&r, "s"), Some((EnrolmentState::Enrolled, 5)));
}

#[test]
fn removed_before_ever_enrolled_needs_nothing() {
    let d = desired(vec![
        deployed(
            Some(42),
            vec![person("t", Role::Instructor), person("s", Role::Student)],
        ),
        EventEvent::ParticipantRemoved {
            participant: person("s", Role::Student),
        },
    ]);
    let mut r = MoodleSync::default();
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["ensure_course", "link_users", "enrol"]
    );
    assert!(r.participant("s").is_none());
}

#[test]
fn end_removes_students_first_then_hides_and_keeps_instructors() {
    let mut events = vec![deployed(
        Some(42),
        vec![
            person("t", Role::Instructor),
            person("s1", Role::Student),
            person("s2", Role::Student),
        ],
    )];
    let mut r = MoodleSync::default();
    converge(&desired(events.clone()), &mut r, &settings());
    events.push(EventEvent::Ended);
    let d = desired(events);
    let p = plan(&d, &r, &settings());
    match &p.steps[..] {
        [Step::Remove { items, mode, .. }, Step::SetCourseVisible {
            course_id: 100,
            visible: false,
            cause: c,
        }] => {
            assert_eq!(*mode, RemovalMode::Unenrol);
            let ids: Vec<_> = items.iter().map(|i| i.participant_id.as_str()).collect();
            assert_eq!(ids, ["s1", "s2"]);
            assert!(items.iter().all(|i| i.cause == cause(2)));
            assert_eq!(*c, cause(2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["unenrol", "hide_course"]
    );
    assert_eq!(enrolment(&r, "t"), Some((EnrolmentState::Enrolled, 3)));
    assert_eq!(enrolment(&r, "s1"), Some((EnrolmentState::Unenrolled, 5)));
    assert_eq!(r.course_visible, Some(false));
    assert_eq!(plan(&d, &r, &settings()).state, SyncState::InSync);

    // Suspend mode suspends the students at the end.
    let s = SagaSettings {
        removal_mode: RemovalMode::Suspend,
        ..settings()
    };
    let mut r = MoodleSync::default();
    converge(
        &desired(vec![deployed(Some(42), vec![person("s1", Role::Student)])]),
        &mut r,
        &s,
    );
    let d = desired(vec![
        deployed(Some(42), vec![person("s1", Role::Student)]),
        EventEvent::Ended,
    ]);
    assert_eq!(converge(&d, &mut r, &s), ["suspend", "hide_course"]);
}

#[test]
fn deploy_and_end_coalesced_creates_a_hidden_course_with_instructors_only() {
    let d = desired(vec![
        deployed(
            Some(42),
            vec![person("t", Role::Instructor), person("s", Role::Student)],
        ),
        EventEvent::Ended,
    ]);
    let p = plan(&d, &MoodleSync::default(), &settings());
    match &p.steps[..] {
        [Step::EnsureCourse(e), Step::LinkUsers(l)] => {
            assert!(!e.visible);
            assert_eq!(e.cause, cause(1));
            assert_eq!(l.users.len(), 1);
            assert_eq!(l.users[0].participant_id, "t");
        }
        other => panic!("{other:?}"),
    }
    let mut r = MoodleSync::default();
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["ensure_course", "link_users", "enrol"]
    );
    assert!(r.participant("s").is_none());
    assert_eq!(r.course_visible, Some(false));
}

#[test]
fn delete_with_and_without_course_deletion() {
    let base = vec![
        deployed(
            Some(42),
            vec![person("t", Role::Instructor), person("s", Role::Student)],
        ),
        EventEvent::Ended,
    ];
    let mut r = MoodleSync::default();
    converge(&desired(base.clone()), &mut r, &settings());
    let mut events = base;
    events.push(EventEvent::Deleted);
    let d = desired(events);

    // Kept: recorded as kept, nothing more (it was ended already).
    let mut kept = r.clone();
    assert_eq!(converge(&d, &mut kept, &settings()), ["keep_course"]);
    assert!(kept.course_kept);
    // Deleted when configured.
    let del = SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    };
    let p = plan(&d, &r, &del);
    assert_eq!(
        p.steps,
        [Step::DeleteCourse {
            course_id: 100,
            cause: cause(3)
        }]
    );
    let mut r2 = r.clone();
    assert_eq!(converge(&d, &mut r2, &del), ["delete_course"]);
    assert!(r2.course_deleted);
    assert_eq!(plan(&d, &r2, &del).state, SyncState::InSync);

    // Deleted straight from deployed, course kept: as if ended (students out, hidden).
    let mut r = MoodleSync::default();
    let live = vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), person("s", Role::Student)],
    )];
    converge(&desired(live.clone()), &mut r, &settings());
    let mut events = live;
    events.push(EventEvent::Deleted);
    assert_eq!(
        converge(&desired(events), &mut r, &settings()),
        ["keep_course", "unenrol", "hide_course"]
    );

    // Deleted before the saga ever recorded a course: nothing when the course is kept; with
    // deletion, one look by shortname (a creation whose answer was lost may have made it).
    let d = desired(vec![
        deployed(Some(42), vec![person("s", Role::Student)]),
        EventEvent::Deleted,
    ]);
    assert!(plan(&d, &MoodleSync::default(), &settings()).is_empty());
    let mut r = MoodleSync::default();
    assert_eq!(converge(&d, &mut r, &del), ["find_course_to_delete"]);
    assert!(plan(&d, &r, &del).is_empty());
}

/// Saga gap (a): an enrol whose outcome was unknown (recorded as a failure, not `Enrolled`),
/// then the participant's removal: they are removed anyway, looking first.
#[test]
fn a_removal_after_an_unknown_enrol_outcome_still_removes() {
    for mode in [RemovalMode::Unenrol, RemovalMode::Suspend] {
        let s = SagaSettings {
            removal_mode: mode,
            ..settings()
        };
        let mut events = vec![deployed(Some(42), vec![person("s1", Role::Student)])];
        let mut r = MoodleSync::default();
        // Course and link recorded, the enrol's answer lost.
        step_once(&desired(events.clone()), &mut r, &s);
        step_once(&desired(events.clone()), &mut r, &s);
        assert_eq!(
            plan(&desired(events.clone()), &r, &s)
                .next()
                .map(Step::name),
            Some("enrol")
        );
        r.apply(MoodleSyncEvent::StepFailed {
            step: "enrol".into(),
            code: "timeout".into(),
            message: "lost".into(),
            attempt: 1,
            transient: true,
            participant_id: None,
            caused_by: Uuid::nil(),
        });
        events.push(EventEvent::ParticipantRemoved {
            participant: person("s1", Role::Student),
        });
        let p = plan(&desired(events.clone()), &r, &s);
        match p.next() {
            Some(Step::Remove { items, .. }) => {
                assert_eq!(items.len(), 1);
                assert!(items[0].look_first, "{items:?}");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        converge(&desired(events.clone()), &mut r, &s);
        assert!(plan(&desired(events), &r, &s).is_empty());
    }
}

/// The same at End: a student linked but never recorded enrolled is removed.
#[test]
fn end_removes_students_whose_enrol_outcome_was_unknown() {
    let mut events = vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), person("s", Role::Student)],
    )];
    let mut r = MoodleSync::default();
    step_once(&desired(events.clone()), &mut r, &settings());
    step_once(&desired(events.clone()), &mut r, &settings());
    events.push(EventEvent::Ended);
    let p = plan(&desired(events), &r, &settings());
    let removal = p
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Remove { items, .. } => Some(items.clone()),
            _ => None,
        })
        .expect("a removal");
    assert_eq!(removal.len(), 1);
    assert_eq!(removal[0].participant_id, "s");
    assert!(removal[0].look_first);
}

#[test]
fn parked_participants_are_excluded_and_fail_the_state() {
    let mut bad = person("bad", Role::Student);
    bad.email = "o'neil@example.org".into();
    let d = desired(vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), bad.clone()],
    )]);
    // Matched by email: looked up anyway (an account may exist), parked only if none does.
    let p = plan(&d, &MoodleSync::default(), &settings());
    match &p.steps[1] {
        Step::LinkUsers(l) => {
            assert_eq!(l.users.len(), 2);
            assert_eq!(
                l.users[1].new_username.as_ref().unwrap_err().code,
                "invalid_username"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut r = MoodleSync::default();
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["ensure_course", "link_users", "enrol"]
    );
    assert!(r.participant("bad").unwrap().parked.is_some());
    assert_eq!(enrolment(&r, "t"), Some((EnrolmentState::Enrolled, 3)));
    let p = plan(&d, &r, &settings());
    assert!(p.is_empty());
    assert_eq!(p.state, SyncState::Failed);

    // Matched by username: a bad username cannot even be looked up: parked before anything.
    let by_username = SagaSettings {
        user_match_field: UserMatchField::Username,
        ..settings()
    };
    let mut t = person("t", Role::Instructor);
    t.username = Some("T".into());
    let mut bad_name = bad.clone();
    bad_name.username = Some("o'neil".into());
    let no_name = person("anon", Role::Student);
    let du = desired(vec![deployed(Some(42), vec![t, bad_name, no_name])]);
    let p = plan(&du, &MoodleSync::default(), &by_username);
    match &p.steps[..] {
        [Step::ParkParticipants(parks), Step::EnsureCourse(_), Step::LinkUsers(l)] => {
            let parked: Vec<_> = parks
                .iter()
                .map(|p| (p.participant_id.as_str(), p.refusal.code.as_str()))
                .collect();
            // Without a username nothing is looked up: never the email's local part.
            assert_eq!(
                parked,
                [("bad", "invalid_username"), ("anon", "username_required")]
            );
            assert_eq!(l.users.len(), 1);
            assert_eq!(l.users[0].key, "t");
            assert_eq!(l.field, UserMatchField::Username);
        }
        other => panic!("{other:?}"),
    }

    // Removing the parked participant ends the failure.
    let d2 = desired(vec![
        deployed(Some(42), vec![person("t", Role::Instructor), bad.clone()]),
        EventEvent::ParticipantRemoved { participant: bad },
    ]);
    assert_eq!(plan(&d2, &r, &settings()).state, SyncState::InSync);

    // Resume: the participant is planned again.
    r.apply(MoodleSyncEvent::Resumed { by: "op".into() });
    let p = plan(&d, &r, &settings());
    assert_eq!(p.state, SyncState::Pending);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].name(), "link_users");
}

#[test]
fn a_parked_saga_plans_nothing_until_resumed() {
    let d = desired(vec![deployed(Some(42), vec![person("s", Role::Student)])]);
    let mut r = MoodleSync::default();
    r.apply(MoodleSyncEvent::Parked {
        step: "ensure_course".into(),
        code: "invalidcourseid".into(),
        reason: "template missing".into(),
        caused_by: Uuid::nil(),
        at_sequence: Some(1),
    });
    let p = plan(&d, &r, &settings());
    assert!(p.is_empty());
    assert_eq!(p.state, SyncState::Failed);
    r.apply(MoodleSyncEvent::Resumed { by: "op".into() });
    assert_eq!(plan(&d, &r, &settings()).steps[0].name(), "ensure_course");
}

#[test]
fn a_participant_parked_at_enrol_keeps_others_flowing() {
    let d = desired(vec![deployed(
        Some(42),
        vec![person("a", Role::Student), person("b", Role::Student)],
    )]);
    let mut r = MoodleSync::default();
    step_once(&d, &mut r, &settings());
    step_once(&d, &mut r, &settings());
    r.apply(MoodleSyncEvent::ParticipantParked {
        participant_id: "a".into(),
        code: "codingerror".into(),
        reason: "user deleted".into(),
        caused_by: Uuid::nil(),
    });
    match &plan(&d, &r, &settings()).steps[..] {
        [Step::Enrol { items, .. }] => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].participant_id, "b");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lost_course_is_made_again_and_a_hidden_live_course_is_shown() {
    let d = desired(vec![deployed(Some(42), vec![person("s", Role::Student)])]);
    let mut r = MoodleSync::default();
    converge(&d, &mut r, &settings());
    r.apply(MoodleSyncEvent::CourseHidden {
        course_id: 100,
        caused_by: Uuid::nil(),
    });
    assert_eq!(converge(&d, &mut r, &settings()), ["show_course"]);
    r.apply(MoodleSyncEvent::CourseLost {
        course_id: 100,
        caused_by: Uuid::nil(),
    });
    // The link survives the course: no new look-up.
    assert_eq!(
        converge(&d, &mut r, &settings()),
        ["ensure_course", "enrol"]
    );
}

#[test]
fn a_role_change_through_remove_and_add_enrols_with_the_new_role() {
    let mut events = vec![deployed(Some(42), vec![person("x", Role::Student)])];
    let mut r = MoodleSync::default();
    converge(&desired(events.clone()), &mut r, &settings());
    events.push(EventEvent::ParticipantRemoved {
        participant: person("x", Role::Student),
    });
    events.push(EventEvent::ParticipantAdded {
        participant: person("x", Role::Instructor),
    });
    let d = desired(events);
    match &plan(&d, &r, &settings()).steps[..] {
        [Step::Enrol { items, .. }] => assert_eq!(items[0].role_id, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn desired_fold_tracks_causes() {
    let d = desired(vec![
        deployed(Some(42), vec![person("a", Role::Student)]),
        EventEvent::ParticipantAdded {
            participant: person("b", Role::Student),
        },
        EventEvent::ParticipantRemoved {
            participant: person("a", Role::Student),
        },
        EventEvent::Ended,
    ]);
    assert_eq!(d.sequence, 4);
    assert_eq!(d.participants.len(), 1);
    assert_eq!(d.participants[0].cause, cause(2));
    assert_eq!(d.removed[0].participant.id, "a");
    assert_eq!(d.removed[0].cause, cause(3));
    assert_eq!(d.status_cause(), cause(4));
    assert_eq!(d.deployed, Some(cause(1)));
    assert_eq!(cause(1).event_id, domain::event_id_of("event", "ev1", 1));
    assert_eq!(course_shortname("ev1"), "ovle-ev1");
}

mod reconcile_pure {
    use super::*;
    use crate::saga::{reconcile, Observed, ObservedCourse, ObservedEnrolment};
    use domain::moodle_sync::DriftKind;

    fn in_sync() -> (Desired, MoodleSync) {
        let d = desired(vec![deployed(
            Some(42),
            // Ids of different lengths: the fake runner derives user ids from them.
            vec![person("t", Role::Instructor), person("st", Role::Student)],
        )]);
        let mut r = MoodleSync::default();
        converge(&d, &mut r, &settings());
        (d, r)
    }

    /// What Moodle holds when it is exactly as recorded.
    fn mirror(r: &MoodleSync) -> Observed {
        let course = ObservedCourse {
            props: Default::default(),
            id: r.course_id.unwrap(),
            shortname: "ovle-ev1".into(),
            category_id: 7,
            visible: r.course_visible,
        };
        Observed {
            recorded_course: Some(course),
            course_by_shortname: None,
            enrolments: r
                .participants
                .iter()
                .filter(|(_, p)| p.enrolment == Some(EnrolmentState::Enrolled))
                .map(|(id, p)| ObservedEnrolment {
                    idnumber: None,
                    user_id: p.moodle_user_id.unwrap(),
                    username: id.clone(),
                    email: Some(format!("{id}@example.org")),
                    roles: vec![p.role_id.unwrap()],
                    suspended: false,
                })
                .collect(),
            missing_users: Default::default(),
        }
    }

    fn apply(r: &mut MoodleSync, facts: Vec<MoodleSyncEvent>) {
        for f in facts {
            r.check(&f).expect("accepted");
            r.apply(f);
        }
    }

    #[test]
    fn no_drift_when_moodle_is_as_recorded() {
        let (d, r) = in_sync();
        let rec = reconcile(&d, &r, &mirror(&r), &settings());
        assert!(rec.rows.is_empty(), "{:?}", rec.rows);
        assert!(rec.corrections.is_empty());
    }

    #[test]
    fn a_hand_unenrol_is_recorded_and_the_planner_enrols_again() {
        let (d, mut r) = in_sync();
        let mut o = mirror(&r);
        let uid = r.participants["st"].moodle_user_id.unwrap();
        o.enrolments.retain(|e| e.user_id != uid);
        let rec = reconcile(&d, &r, &o, &settings());
        assert_eq!(rec.rows.len(), 1);
        assert_eq!(rec.rows[0].note.kind, DriftKind::Enrolment);
        assert_eq!(rec.rows[0].note.participant_id.as_deref(), Some("st"));
        apply(&mut r, rec.corrections);
        assert_eq!(converge(&d, &mut r, &settings()), ["enrol"]);
    }

    #[test]
    fn an_extra_role_is_drift_and_taken_away() {
        let (d, mut r) = in_sync();
        let mut o = mirror(&r);
        let uid = r.participants["st"].moodle_user_id.unwrap();
        // The student also holds the instructor role (and a role the engine does not give).
        let e = o.enrolments.iter_mut().find(|e| e.user_id == uid).unwrap();
        e.roles = vec![5, 3, 9];
        let rec = reconcile(&d, &r, &o, &settings());
        assert_eq!(rec.rows.len(), 1, "{:?}", rec.rows);
        assert_eq!(rec.rows[0].note.kind, DriftKind::Role);
        apply(&mut r, rec.corrections);
        assert_eq!(r.participants["st"].extra_roles, [3]);
        let steps = converge(&d, &mut r, &settings());
        assert_eq!(steps, ["unassign_roles"]);
        // Reported once Moodle holds exactly the role again: nothing.
        let o = mirror(&r);
        assert!(reconcile(&d, &r, &o, &settings()).rows.is_empty());
    }

    #[test]
    fn a_course_shown_by_hand_on_an_ended_event_is_hidden_again() {
        let (mut d, mut r) = in_sync();
        d.apply(2, EventEvent::Ended);
        converge(&d, &mut r, &settings());
        let mut o = mirror(&r);
        o.recorded_course.as_mut().unwrap().visible = Some(true);
        let rec = reconcile(&d, &r, &o, &settings());
        assert_eq!(rec.rows.len(), 1);
        assert_eq!(rec.rows[0].note.kind, DriftKind::CourseVisibility);
        apply(&mut r, rec.corrections);
        assert_eq!(converge(&d, &mut r, &settings()), ["hide_course"]);
    }

    #[test]
    fn a_lost_course_and_accounts_are_made_again() {
        let (d, mut r) = in_sync();
        let o = Observed {
            missing_users: r
                .participants
                .values()
                .filter_map(|p| p.moodle_user_id)
                .collect(),
            ..Observed::default()
        };
        let rec = reconcile(&d, &r, &o, &settings());
        let kinds: Vec<DriftKind> = rec.rows.iter().map(|r| r.note.kind).collect();
        assert_eq!(
            kinds,
            [
                DriftKind::CourseMissing,
                DriftKind::Account,
                DriftKind::Account
            ]
        );
        apply(&mut r, rec.corrections);
        assert_eq!(
            converge(&d, &mut r, &settings()),
            ["ensure_course", "link_users", "enrol"]
        );
    }

    #[test]
    fn a_deleted_events_course_found_again_is_adopted_then_deleted() {
        let (mut d, mut r) = in_sync();
        let del = SagaSettings {
            delete_course_on_event_delete: true,
            ..settings()
        };
        d.apply(2, EventEvent::Deleted);
        converge(&d, &mut r, &del);
        assert!(r.course_deleted);
        let o = Observed {
            course_by_shortname: Some(ObservedCourse {
                props: Default::default(),
                id: 555,
                shortname: "ovle-ev1".into(),
                category_id: 7,
                visible: Some(true),
            }),
            ..Observed::default()
        };
        let rec = reconcile(&d, &r, &o, &del);
        assert_eq!(rec.rows[0].note.kind, DriftKind::CourseExists);
        apply(&mut r, rec.corrections);
        assert_eq!(converge(&d, &mut r, &del), ["delete_course"]);
    }

    /// The reconcile asks the planner's rule: a course kept when its event was deleted is not
    /// reported as a course that should be gone once deletion is switched on later (the planner
    /// would never act on such a row).
    #[test]
    fn a_kept_course_is_not_drift_when_deletion_is_switched_on_later() {
        let (mut d, mut r) = in_sync();
        d.apply(2, EventEvent::Deleted);
        converge(&d, &mut r, &settings());
        assert!(r.course_kept);
        let del = SagaSettings {
            delete_course_on_event_delete: true,
            ..settings()
        };
        assert!(plan(&d, &r, &del).is_empty());
        let rec = reconcile(&d, &r, &mirror(&r), &del);
        assert!(
            rec.rows
                .iter()
                .all(|row| row.note.kind != DriftKind::CourseExists),
            "{:?}",
            rec.rows
        );
        assert!(rec.corrections.is_empty(), "{:?}", rec.corrections);
    }
}

/// The course-deletion setting decides once, when the event is deleted: turned on later, it
/// does not delete a course that was kept; turned off later, it does not revive work on a
/// course that was deleted.
#[test]
fn the_deletion_setting_is_the_one_in_force_when_the_event_was_deleted() {
    let keep = settings();
    let delete = SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    };
    let live = vec![deployed(
        Some(42),
        vec![person("t", Role::Instructor), person("s", Role::Student)],
    )];
    let mut deleted = live.clone();
    deleted.push(EventEvent::Deleted);
    for (first, then) in [(&keep, &delete), (&delete, &keep)] {
        let mut r = MoodleSync::default();
        converge(&desired(live.clone()), &mut r, first);
        let d = desired(deleted.clone());
        let names = converge(&d, &mut r, first);
        if first.delete_course_on_event_delete {
            assert_eq!(names, ["delete_course"]);
            assert!(r.course_deleted);
        } else {
            assert_eq!(names[0], "keep_course", "{names:?}");
            assert!(r.course_kept && !r.course_deleted);
        }
        let later = plan(&d, &r, then);
        assert!(later.is_empty(), "{:?}", later.steps);
        assert_eq!(later.state, SyncState::InSync);
    }
}

/// The views store the settings they were built with; an existing database holds the JSON of
/// the view settings as they were, and must read back equal (or every view is rebuilt).
#[test]
fn the_view_fingerprint_is_the_json_databases_hold() {
    let stored = r#"{"moodle_enabled":true,"delete_course_on_event_delete":false,"instructor_role_id":3,"student_role_id":5}"#;
    let s = SagaSettings {
        removal_mode: RemovalMode::Suspend,
        user_match_field: UserMatchField::Username,
        ..settings()
    };
    assert_eq!(
        serde_json::to_string(&s.view_fingerprint()).unwrap(),
        stored
    );
    let read: ViewFingerprint = serde_json::from_str(stored).unwrap();
    assert_eq!(read, s.view_fingerprint());
    let other = SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    };
    assert_ne!(read, other.view_fingerprint());
}

fn park(at_sequence: Option<u64>) -> MoodleSyncEvent {
    MoodleSyncEvent::Parked {
        step: "ensure_course".into(),
        code: "invalidcourseid".into(),
        reason: "no such template".into(),
        caused_by: cause(1).event_id,
        at_sequence,
    }
}

#[test]
fn a_parked_deploy_stands_until_the_event_changes_at_course_level() {
    let s = settings();
    let events = vec![deployed(Some(2), vec![person("p1", Role::Student)])];
    let mut r = MoodleSync::default();
    r.apply(park(Some(1)));
    let d = desired(events.clone());
    assert!(park_stands(&d, &r));
    assert!(plan(&d, &r, &s).is_empty());
    assert_eq!(plan(&d, &r, &s).state, SyncState::Failed);
    // A participant added is no reason to try the template again.
    let mut more = events.clone();
    more.push(EventEvent::ParticipantAdded {
        participant: person("p2", Role::Student),
    });
    assert!(park_stands(&desired(more.clone()), &r));
    // Another template, an end, a delete: the planner looks again.
    for change in [
        EventEvent::TemplateChanged {
            template_course_id: 9,
        },
        EventEvent::Ended,
        EventEvent::Deleted,
    ] {
        let mut later = more.clone();
        later.push(change.clone());
        let d = desired(later);
        assert!(!park_stands(&d, &r), "{change:?}");
        let p = plan(&d, &r, &s);
        // Deleted, with courses kept: nothing is left to do at all.
        assert_ne!(p.state, SyncState::Failed, "{change:?}: {p:?}");
        assert!(
            !p.is_empty() || matches!(change, EventEvent::Deleted),
            "{change:?}: {p:?}"
        );
    }
    // The new template is the one the duplication copies.
    let mut later = more;
    later.push(EventEvent::TemplateChanged {
        template_course_id: 9,
    });
    let p = plan(&desired(later), &r, &s);
    assert!(
        format!("{:?}", p.next()).contains("template_course_id: 9"),
        "{p:?}"
    );
    // A park recorded before parks kept their sequence stands until resumed.
    let mut old = MoodleSync::default();
    old.apply(park(None));
    let mut ended = events;
    ended.push(EventEvent::Ended);
    assert!(park_stands(&desired(ended), &old));
}

#[test]
fn a_deleted_parked_deploy_ends_without_a_course() {
    let s = SagaSettings {
        delete_course_on_event_delete: true,
        ..settings()
    };
    let mut r = MoodleSync::default();
    r.apply(park(Some(1)));
    let d = desired(vec![deployed(Some(2), vec![]), EventEvent::Deleted]);
    // It looks for a course a lost answer may have made, finds none, and is done.
    let steps = converge(&d, &mut r, &s);
    assert!(!steps.is_empty());
    assert_eq!(plan(&d, &r, &s).state, SyncState::InSync, "{steps:?}");
}
