use super::*;
use domain::course::{CourseDefaults, CourseShape, CourseSpec};
use domain::event::{EventEvent, Schedule};
use domain::moodle_sync::MoodleSyncEvent;

use crate::saga::desired::Desired;

const ID: &str = "1a2b3c4d-0000-4000-8000-000000000001";
const START: i64 = 1_800_000_000;

fn settings() -> SagaSettings {
    SagaSettings {
        enabled: true,
        category_id: 2,
        ..SagaSettings::disabled()
    }
}

fn deployed(shape: CourseShape, schedule: Schedule) -> Desired {
    let defaults = CourseDefaults {
        category_id: Some(2),
        ..CourseDefaults::default()
    };
    Desired::fold(
        ID,
        [(
            1,
            EventEvent::Deployed {
                id: ID.into(),
                environment_id: "env".into(),
                name: "Spring lab".into(),
                template_course_id: Some(7),
                participants: vec![],
                schedule,
                course: Some(CourseSpec::resolve(&shape, &defaults, "Net", "2026-12-02")),
            },
        )],
    )
}

fn at_start() -> CourseShape {
    CourseShape {
        category_id: Some(3),
        visibility: Some(CourseVisibility::AtStart),
        archive_category_id: Some(4),
        ..CourseShape::default()
    }
}

fn with_start() -> Schedule {
    Schedule {
        starts_at: Some(START),
        ends_at: Some(START + 86_400),
    }
}

#[test]
fn an_at_start_course_is_hidden_until_the_start_and_wakes_the_saga_then() {
    let before = deployed(at_start(), with_start()).at(START * 1000 - 1);
    let t = target(&before, &settings());
    assert_eq!(t.visible, Some(false));
    assert_eq!(t.wake_at_ms, Some(START * 1000));
    assert_eq!(t.create_in, 3);
    let after = deployed(at_start(), with_start()).at(START * 1000);
    let t = target(&after, &settings());
    assert_eq!(t.visible, Some(true));
    assert_eq!(t.wake_at_ms, None);
    // Without a time asked for, the start has not come (never shown early).
    let unknown = deployed(at_start(), with_start());
    assert_eq!(target(&unknown, &settings()).visible, Some(false));
    // Without a start date, at_start is visible at once.
    let undated = deployed(at_start(), Schedule::default());
    assert_eq!(target(&undated, &settings()).visible, Some(true));
}

#[test]
fn a_hidden_course_is_made_hidden_and_not_managed_while_it_runs() {
    let shape = CourseShape {
        visibility: Some(CourseVisibility::Hidden),
        ..CourseShape::default()
    };
    let mut d = deployed(shape, Schedule::default());
    assert_eq!(target(&d, &settings()).visible, None);
    d.apply(2, EventEvent::Ended);
    assert_eq!(target(&d, &settings()).visible, Some(false));
}

#[test]
fn the_end_archives_and_names_and_dates_follow_a_change() {
    let mut d = deployed(at_start(), with_start());
    let t = target(&d, &settings());
    assert_eq!(t.props.category_id, Some(3));
    assert_eq!(t.props.startdate, Some(START));
    assert_eq!(t.props.idnumber.as_deref(), Some(&*format!("ovle-{ID}")));
    assert_eq!(t.shortname, "Spring lab (1a2b3c4d)");
    d.apply(
        2,
        EventEvent::EventChanged {
            name: "Autumn lab".into(),
            schedule: Schedule {
                starts_at: Some(START),
                ends_at: None,
            },
        },
    );
    let t = target(&d, &settings());
    assert_eq!(t.props.shortname.as_deref(), Some("Autumn lab (1a2b3c4d)"));
    assert_eq!(
        t.props.enddate,
        Some(0),
        "an end removed is cleared in Moodle"
    );
    d.apply(3, EventEvent::Ended);
    assert_eq!(target(&d, &settings()).props.category_id, Some(4));
}

#[test]
fn changes_are_what_the_record_does_not_hold() {
    let d = deployed(at_start(), with_start());
    let t = target(&d, &settings());
    let mut r = MoodleSync::default();
    for e in [
        MoodleSyncEvent::CourseDuplicated {
            course_id: 9,
            shortname: t.shortname.clone(),
            template_course_id: 7,
            category_id: 3,
            adopted: false,
            caused_by: uuid::Uuid::nil(),
        },
        MoodleSyncEvent::CourseUpdated {
            course_id: 9,
            props: CourseProps {
                fullname: Some(t.fullname.clone()),
                ..CourseProps::default()
            },
            caused_by: uuid::Uuid::nil(),
        },
    ] {
        cqrs_es::Aggregate::apply(&mut r, e);
    }
    let due = changes(&t, &r).unwrap();
    assert_eq!(due.fullname, None);
    assert_eq!(due.shortname, None);
    assert_eq!(due.category_id, None);
    assert_eq!(due.idnumber, t.props.idnumber);
    assert_eq!(due.startdate, Some(START));
    assert_eq!(due.enddate, Some(START + 86_400));
    cqrs_es::Aggregate::apply(
        &mut r,
        MoodleSyncEvent::CourseUpdated {
            course_id: 9,
            props: due,
            caused_by: uuid::Uuid::nil(),
        },
    );
    assert_eq!(changes(&t, &r), None);
}

#[test]
fn a_legacy_event_keeps_its_old_course_rules() {
    let d = Desired::fold(
        "ev",
        [(
            1,
            EventEvent::Deployed {
                id: "ev".into(),
                environment_id: "env".into(),
                name: "Old".into(),
                template_course_id: Some(7),
                participants: vec![],
                schedule: Schedule::default(),
                course: None,
            },
        )],
    );
    let t = target(&d, &settings());
    assert_eq!(t.shortname, "ovle-ev");
    assert_eq!(t.create_in, 2);
    assert_eq!(t.visible, Some(true));
    assert!(t.props.is_empty());
}

#[test]
fn only_the_engines_own_course_is_adopted() {
    let own = Some("ovle-1");
    assert_eq!(whose(true, own, Some("ovle-1"), false), Whose::Ours);
    assert_eq!(whose(true, own, Some("ovle-1"), true), Whose::Ours);
    assert_eq!(whose(true, own, Some("BIO-101"), true), Whose::Stranger);
    assert_eq!(whose(true, own, None, true), Whose::Ours);
    assert_eq!(whose(true, own, Some(""), false), Whose::Stranger);
    assert_eq!(whose(true, None, None, false), Whose::Stranger);
    assert_eq!(whose(false, None, None, false), Whose::Ours);
}

#[test]
fn a_course_renamed_or_moved_by_hand_is_drift_and_pending_work_is_not() {
    let d = deployed(at_start(), with_start());
    let t = target(&d, &settings());
    let mut r = MoodleSync {
        course_props: CourseProps {
            shortname: t.props.shortname.clone(),
            category_id: Some(3),
            ..CourseProps::default()
        },
        ..MoodleSync::default()
    };
    let observed = CourseProps {
        fullname: Some("Renamed".into()),
        shortname: Some("HAND-1".into()),
        idnumber: None,
        category_id: Some(1),
        startdate: Some(5),
        enddate: Some(0),
    };
    let (rows, seen) = drift(&t, &r, &observed);
    let what: Vec<_> = rows.iter().map(|r| r.what).collect();
    // The full name and dates are not recorded as written yet: pending, not drift.
    assert_eq!(what, ["course shortname", "course category"]);
    assert_eq!(rows[1].expected, "category 3");
    assert_eq!(seen.shortname.as_deref(), Some("HAND-1"));
    assert_eq!(seen.category_id, Some(1));
    assert_eq!(seen.fullname, None);
    // Recorded, the planner writes the wanted values back.
    r.course_props.merge(&seen);
    let due = changes(&t, &r).unwrap();
    assert_eq!(due.shortname, t.props.shortname);
    assert_eq!(due.category_id, Some(3));
}
