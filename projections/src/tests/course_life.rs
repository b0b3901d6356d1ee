//! A shaped course through the event's life, as the planner steps it: made hidden in its
//! category, given its idnumber and dates, shown at the start, renamed with the event, hidden and
//! archived at the end.

use domain::course::{CourseDefaults, CourseShape, CourseSpec, CourseVisibility};
use domain::event::{EventEvent, Schedule};
use domain::moodle_sync::MoodleSync;

use super::runner::step_once;
use crate::saga::{plan, Desired, SagaSettings, Step, SyncState};

const ID: &str = "1a2b3c4d-0000-4000-8000-000000000001";
const START: i64 = 1_800_000_000;

fn settings() -> SagaSettings {
    SagaSettings {
        enabled: true,
        category_id: 2,
        ..SagaSettings::disabled()
    }
}

fn history() -> Vec<(u64, EventEvent)> {
    let shape = CourseShape {
        category_id: Some(3),
        shortname_template: Some("LAB-{event_short_id}".into()),
        visibility: Some(CourseVisibility::AtStart),
        archive_category_id: Some(4),
        ..CourseShape::default()
    };
    vec![(
        1,
        EventEvent::Deployed {
            id: ID.into(),
            environment_id: "env".into(),
            name: "Spring lab".into(),
            template_course_id: Some(7),
            participants: vec![],
            schedule: Schedule {
                starts_at: Some(START),
                ends_at: Some(START + 3600),
            },
            course: Some(CourseSpec::resolve(
                &shape,
                &CourseDefaults::default(),
                "Net",
                "2026-12-02",
            )),
        },
    )]
}

fn run(d: &Desired, r: &mut MoodleSync) -> Vec<Step> {
    let mut steps = Vec::new();
    while let Some(s) = step_once(d, r, &settings()) {
        steps.push(s);
        assert!(steps.len() < 20, "no convergence: {steps:?}");
    }
    steps
}

#[test]
fn a_shaped_course_follows_the_event() {
    let mut events = history();
    let before = START * 1000 - 60_000;
    let d = Desired::fold(ID, events.clone()).at(before);
    let mut r = MoodleSync::default();
    let steps = run(&d, &mut r);
    let Step::EnsureCourse(e) = &steps[0] else {
        panic!("{steps:?}")
    };
    assert_eq!(e.shortname, "LAB-1a2b3c4d");
    assert_eq!(e.fullname, "Spring lab");
    assert_eq!(e.category_id, 3);
    assert!(!e.visible, "at_start: made hidden");
    assert!(e.shaped);
    let Step::UpdateCourse { props, .. } = &steps[1] else {
        panic!("{steps:?}")
    };
    assert_eq!(props.idnumber.as_deref(), Some(&*format!("ovle-{ID}")));
    assert_eq!(
        (props.startdate, props.enddate),
        (Some(START), Some(START + 3600))
    );
    assert_eq!(props.fullname, None, "set by the duplication");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(r.course_visible, Some(false));
    let p = plan(&d, &r, &settings());
    assert_eq!(
        (p.state, p.wake_at_ms),
        (SyncState::InSync, Some(START * 1000))
    );

    // At the start: shown.
    let d = Desired::fold(ID, events.clone()).at(START * 1000);
    assert_eq!(plan(&d, &r, &settings()).state, SyncState::Pending);
    let steps = run(&d, &mut r);
    assert!(
        matches!(
            steps.as_slice(),
            [Step::SetCourseVisible { visible: true, .. }]
        ),
        "{steps:?}"
    );

    // Renamed: the names follow (the shortname template does not use the name).
    events.push((
        2,
        EventEvent::EventChanged {
            name: "Summer lab".into(),
            schedule: Schedule {
                starts_at: Some(START),
                ends_at: Some(START + 7200),
            },
        },
    ));
    let d = Desired::fold(ID, events.clone()).at(START * 1000);
    let steps = run(&d, &mut r);
    let [Step::UpdateCourse { props, .. }] = steps.as_slice() else {
        panic!("{steps:?}")
    };
    assert_eq!(props.fullname.as_deref(), Some("Summer lab"));
    assert_eq!(props.shortname, None);
    assert_eq!(props.enddate, Some(START + 7200));
    assert_eq!(props.startdate, None);

    // Ended: hidden and archived.
    events.push((3, EventEvent::Ended));
    let d = Desired::fold(ID, events).at(START * 1000 + 10);
    let steps = run(&d, &mut r);
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::SetCourseVisible { visible: false, .. })),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::UpdateCourse { props, .. } if props.category_id == Some(4))),
        "{steps:?}"
    );
    assert_eq!(plan(&d, &r, &settings()).state, SyncState::InSync);
}
