use super::*;
use domain::participant::Role;
use serde::Serialize;
use uuid::Uuid;

fn stored<E: Serialize>(position: i64, stream: &str, event_type: &str, e: &E) -> StoredEvent {
    StoredEvent {
        position,
        event_id: Uuid::nil(),
        aggregate_type: stream.into(),
        aggregate_id: "ev-1".into(),
        sequence: position,
        event_type: event_type.into(),
        event_version: "1".into(),
        payload: serde_json::to_value(e).unwrap(),
        metadata: serde_json::json!({}),
        recorded_at: DateTime::parse_from_rfc3339("2024-05-01T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

fn p2() -> Participant {
    Participant {
        idnumber: None,
        id: "p2".into(),
        email: "b@x.org".into(),
        username: None,
        first_name: "B".into(),
        last_name: "X".into(),
        role: Role::Student,
    }
}

#[test]
fn domain_sentences() {
    let e = stored(
        3,
        "event",
        "ParticipantAdded",
        &EventEvent::ParticipantAdded { participant: p2() },
    );
    assert_eq!(sentence(&e), "participant p2 (student, b@x.org) added");
    let e = stored(
        1,
        "event",
        "Deployed",
        &EventEvent::Deployed {
            course: Default::default(),
            schedule: Default::default(),
            id: "ev-1".into(),
            environment_id: "env".into(),
            name: "Lab".into(),
            template_course_id: Some(2),
            participants: vec![p2()],
        },
    );
    assert_eq!(
        sentence(&e),
        "deployed \"Lab\" from environment env (template course 2) with 1 participant"
    );
    assert_eq!(
        sentence(&stored(9, "event", "Ended", &EventEvent::Ended)),
        "event ended"
    );
}

#[test]
fn saga_sentences() {
    let e = stored(
        4,
        "moodle_sync",
        "CourseDuplicated",
        &MoodleSyncEvent::CourseDuplicated {
            course_id: 17,
            shortname: "ovle-abc".into(),
            template_course_id: 2,
            category_id: 1,
            adopted: false,
            caused_by: Uuid::nil(),
        },
    );
    assert_eq!(
        sentence(&e),
        "course 17 duplicated from template 2 (shortname ovle-abc, category 1)"
    );
    let e = stored(
        5,
        "moodle_sync",
        "Enrolled",
        &MoodleSyncEvent::Enrolled {
            participant_id: "p2".into(),
            moodle_user_id: 41,
            role_id: 5,
            caused_by: Uuid::nil(),
        },
    );
    assert_eq!(sentence(&e), "enrolled p2 as role 5 (user 41)");
    let e = stored(
        6,
        "moodle_sync",
        "StepFailed",
        &MoodleSyncEvent::StepFailed {
            step: "enrol".into(),
            code: "ex_unabletolock".into(),
            message: String::new(),
            attempt: 2,
            transient: true,
            participant_id: None,
            caused_by: Uuid::nil(),
        },
    );
    assert_eq!(
        sentence(&e),
        "step enrol failed: ex_unabletolock (attempt 2, will retry)"
    );
    let long = "x".repeat(200);
    let e = stored(
        7,
        "moodle_sync",
        "StepFailed",
        &MoodleSyncEvent::StepFailed {
            step: "create_users".into(),
            code: "invalidparameter".into(),
            message: long,
            attempt: 1,
            transient: false,
            participant_id: Some("p3".into()),
            caused_by: Uuid::nil(),
        },
    );
    let s = sentence(&e);
    assert!(
        s.starts_with(
            "step create_users failed for p3: invalidparameter (attempt 1, permanent): x"
        ),
        "{s}"
    );
    assert!(s.chars().count() < 160, "{s}");
}

#[test]
fn lines_and_undecodable_rows() {
    let e = stored(12, "event", "Ended", &EventEvent::Ended);
    assert_eq!(
        line(&e),
        "      12  2024-05-01T10:00:00.250Z  event        Ended               event ended"
    );
    let mut bad = stored(
        13,
        "moodle_sync",
        "Enrolled",
        &serde_json::json!({"nope": 1}),
    );
    bad.event_type = "Enrolled".into();
    assert!(sentence(&bad).starts_with("(cannot decode this Enrolled:"));
}

#[test]
fn filters() {
    let e = stored(12, "event", "Ended", &EventEvent::Ended);
    let f = StoryFilter::parse(Some("enrolled, ended"), None, None).unwrap();
    assert!(f.matches(&e));
    let f = StoryFilter::parse(Some("moodle_sync"), None, None).unwrap();
    assert!(!f.matches(&e));
    let f = StoryFilter::parse(
        None,
        Some("2024-05-01T10:00:00Z"),
        Some("2024-05-01T10:00:01+00:00"),
    )
    .unwrap();
    assert!(f.matches(&e));
    let f = StoryFilter::parse(None, Some("2024-05-01T11:00:00Z"), None).unwrap();
    assert!(!f.matches(&e));
    assert!(StoryFilter::parse(None, Some("yesterday"), None)
        .unwrap_err()
        .contains("--from"));
}
