use super::*;
use domain::participant::Role;
use uuid::Uuid;

fn enabled() -> SagaSettings {
    SagaSettings::enabled(1)
}

fn person(id: &str, role: Role) -> Participant {
    Participant {
        idnumber: None,
        id: id.into(),
        email: format!("{id}@example.org"),
        username: None,
        first_name: "F".into(),
        last_name: "L".into(),
        role,
    }
}

fn deployed(template: Option<i64>) -> EventEvent {
    EventEvent::Deployed {
        course: Default::default(),
        schedule: Default::default(),
        id: "e1".into(),
        environment_id: "env".into(),
        name: "Lab".into(),
        template_course_id: template,
        participants: vec![person("t", Role::Instructor), person("s", Role::Student)],
    }
}

fn at(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap()
}

fn course() -> MoodleSyncEvent {
    MoodleSyncEvent::CourseDuplicated {
        course_id: 10,
        shortname: "ovle-e1".into(),
        template_course_id: 42,
        category_id: 1,
        adopted: false,
        caused_by: Uuid::nil(),
    }
}

fn enrolled(id: &str, user: i64, role: i64) -> MoodleSyncEvent {
    MoodleSyncEvent::Enrolled {
        participant_id: id.into(),
        moodle_user_id: user,
        role_id: role,
        caused_by: Uuid::nil(),
    }
}

fn unenrolled(id: &str, user: i64) -> MoodleSyncEvent {
    MoodleSyncEvent::Unenrolled {
        participant_id: id.into(),
        moodle_user_id: user,
        caused_by: Uuid::nil(),
    }
}

fn synced() -> EventFold {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_sync(course(), at(1));
    f.apply_sync(enrolled("t", 100, 3), at(2));
    f.apply_sync(enrolled("s", 101, 5), at(3));
    f
}

#[test]
fn nothing_before_deploy() {
    assert!(EventFold::new().view(&enabled()).is_none());
}

#[test]
fn disabled_and_not_linked() {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    let v = f.view(&SagaSettings::disabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Disabled);
    assert_eq!(v.moodle.pending_steps, 0);
    assert!(v.moodle.enrolments.is_empty());
    assert_eq!(v.status, Status::Deployed);
    assert_eq!(v.participants.len(), 2);

    let mut f = EventFold::new();
    f.apply_event(deployed(None));
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::NotLinked);
    assert_eq!(v.moodle.pending_steps, 0);
    assert_eq!(v.moodle.course_id, None);
}

#[test]
fn pending_until_everything_is_recorded() {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Pending);
    // course + two enrolments
    assert_eq!(v.moodle.pending_steps, 3);
    assert_eq!(v.moodle.enrolments.len(), 2);
    assert_eq!(v.moodle.enrolments[0].state, EnrolmentViewState::Pending);
    assert_eq!(v.moodle.enrolments[0].role_id, Some(3));
    assert_eq!(v.moodle.enrolments[1].role_id, Some(5));

    let v = synced().view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.pending_steps, 0);
    assert_eq!(v.moodle.course_id, Some(10));
    assert_eq!(v.moodle.course_visible, Some(true));
    assert_eq!(
        v.moodle.enrolments[1],
        EnrolmentView {
            participant_id: "s".into(),
            moodle_user_id: Some(101),
            role_id: Some(5),
            state: EnrolmentViewState::Enrolled,
        }
    );
}

#[test]
fn removal_and_end() {
    let mut f = synced();
    f.apply_event(EventEvent::ParticipantRemoved {
        participant: person("s", Role::Student),
    });
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.participants.len(), 1);
    assert_eq!(v.moodle.state, MoodleState::Pending);
    assert_eq!(v.moodle.pending_steps, 1);
    f.apply_sync(unenrolled("s", 101), at(4));
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.enrolments[1].state, EnrolmentViewState::Unenrolled);

    // End: students leave, instructors stay, the course is hidden.
    let mut f = synced();
    f.apply_event(EventEvent::Ended);
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.status, Status::Ended);
    assert_eq!(v.moodle.pending_steps, 2);
    f.apply_sync(unenrolled("s", 101), at(4));
    f.apply_sync(
        MoodleSyncEvent::CourseHidden {
            course_id: 10,
            caused_by: Uuid::nil(),
        },
        at(5),
    );
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.course_visible, Some(false));
}

#[test]
fn delete_with_and_without_course_deletion() {
    let mut f = synced();
    f.apply_event(EventEvent::Deleted);
    let delete = SagaSettings {
        delete_course_on_event_delete: true,
        ..enabled()
    };
    let v = f.view(&delete).unwrap();
    assert_eq!(v.status, Status::Deleted);
    assert_eq!(v.moodle.pending_steps, 1);
    f.apply_sync(
        MoodleSyncEvent::CourseDeleted {
            course_id: 10,
            caused_by: Uuid::nil(),
        },
        at(9),
    );
    let v = f.view(&delete).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.course_visible, None);

    // Kept course: recorded as kept, hidden, students out.
    let mut f = synced();
    f.apply_event(EventEvent::Deleted);
    assert_eq!(f.view(&enabled()).unwrap().moodle.pending_steps, 3);
    f.apply_sync(
        MoodleSyncEvent::CourseKept {
            course_id: 10,
            caused_by: Uuid::nil(),
        },
        at(9),
    );
    // Turning deletion on afterwards does not reach back to this course.
    assert_eq!(f.view(&delete).unwrap().moodle.pending_steps, 2);

    // Deleted before the saga ever created a course: nothing to do.
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_event(EventEvent::Deleted);
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.pending_steps, 0);
}

#[test]
fn failures_parking_and_resume() {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_sync(
        MoodleSyncEvent::StepFailed {
            step: "duplicate_course".into(),
            code: "timeout".into(),
            message: "timed out".into(),
            attempt: 1,
            transient: true,
            participant_id: None,
            caused_by: Uuid::nil(),
        },
        at(1),
    );
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Pending);
    assert_eq!(
        v.moodle.last_error,
        Some(ErrorView {
            code: "timeout".into(),
            message: "timed out".into(),
            at: at(1)
        })
    );
    f.apply_sync(
        MoodleSyncEvent::Parked {
            step: "duplicate_course".into(),
            code: "invalidrecord".into(),
            reason: "template missing".into(),
            caused_by: Uuid::nil(),
            at_sequence: None,
        },
        at(2),
    );
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Failed);
    assert_eq!(v.moodle.last_error.as_ref().unwrap().code, "invalidrecord");
    f.apply_sync(MoodleSyncEvent::Resumed { by: "op".into() }, at(3));
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Pending);
    assert_eq!(v.moodle.last_error, None);
}

#[test]
fn a_parked_participant_fails_the_event_and_its_enrolment() {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_sync(course(), at(1));
    f.apply_sync(enrolled("t", 100, 3), at(2));
    f.apply_sync(
        MoodleSyncEvent::ParticipantParked {
            participant_id: "s".into(),
            code: "invalid_username".into(),
            reason: "bad".into(),
            caused_by: Uuid::nil(),
        },
        at(3),
    );
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Failed);
    assert_eq!(v.moodle.enrolments[1].state, EnrolmentViewState::Failed);
    // A later success elsewhere keeps the error while the participant is parked.
    f.apply_sync(
        MoodleSyncEvent::CourseHidden {
            course_id: 10,
            caused_by: Uuid::nil(),
        },
        at(4),
    );
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.last_error.unwrap().code, "invalid_username");
}

#[test]
fn view_serialises_as_the_contract_says() {
    let v = synced().view(&enabled()).unwrap();
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["status"], "deployed");
    assert_eq!(json["moodle"]["state"], "in_sync");
    assert_eq!(json["moodle"]["enrolments"][0]["state"], "enrolled");
    assert_eq!(json["participants"][0]["role"], "instructor");
    assert!(json["moodle"]["last_error"].is_null());
    let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys.len(),
        6,
        "id, environment_id, name, status, participants, moodle: {keys:?}"
    );
}

#[test]
fn environment_view() {
    let v = EnvironmentView::fold(vec![
        EnvironmentEvent::EnvironmentCreated {
            id: "env".into(),
            name: "Lab".into(),
        },
        EnvironmentEvent::TemplateLinked { course_id: 42 },
        EnvironmentEvent::EnvironmentRenamed {
            name: "Lab 2".into(),
        },
    ])
    .unwrap();
    assert_eq!(
        v,
        EnvironmentView {
            id: "env".into(),
            name: "Lab 2".into(),
            moodle_template_course_id: Some(42),
            moodle_category_id: None,
            moodle_course_fullname_template: None,
            moodle_course_shortname_template: None,
            moodle_course_idnumber_template: None,
            moodle_course_visibility: None,
            moodle_archive_category_id: None,
        }
    );
    assert!(EnvironmentView::fold(vec![]).is_none());
}

/// A participant linked whose enrolment's answer was lost (only the failure is recorded),
/// then removed: the saga plans their removal (looking first), so the view is pending, not in
/// sync as it used to say.
#[test]
fn a_removed_participant_whose_enrolment_outcome_was_lost_is_pending() {
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_sync(course(), at(1));
    f.apply_sync(enrolled("t", 100, 3), at(2));
    f.apply_sync(
        MoodleSyncEvent::UserLinked {
            differs: None,
            key: None,
            participant_id: "s".into(),
            moodle_user_id: 101,
            username: "s".into(),
            how: domain::moodle_sync::LinkKind::Created,
            caused_by: Uuid::nil(),
        },
        at(3),
    );
    f.apply_sync(
        MoodleSyncEvent::StepFailed {
            step: "enrol".into(),
            code: "timeout".into(),
            message: "no answer".into(),
            attempt: 1,
            transient: true,
            participant_id: None,
            caused_by: Uuid::nil(),
        },
        at(4),
    );
    f.apply_event(EventEvent::ParticipantRemoved {
        participant: person("s", Role::Student),
    });
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Pending);
    assert_eq!(v.moodle.pending_steps, 1);
    assert_eq!(v.moodle.enrolments[1].state, EnrolmentViewState::Pending);
    f.apply_sync(unenrolled("s", 101), at(5));
    let v = f.view(&enabled()).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.pending_steps, 0);
}

/// A deleted event whose course was never recorded, with course deletion on: the saga looks
/// for it by shortname (a creation whose answer was lost may have made it), so that is
/// outstanding until the look is recorded.
#[test]
fn a_course_to_look_for_before_deletion_is_pending() {
    let delete = SagaSettings {
        delete_course_on_event_delete: true,
        ..enabled()
    };
    let mut f = EventFold::new();
    f.apply_event(deployed(Some(42)));
    f.apply_event(EventEvent::Deleted);
    let v = f.view(&delete).unwrap();
    assert_eq!(v.moodle.state, MoodleState::Pending);
    assert_eq!(v.moodle.pending_steps, 1);
    f.apply_sync(
        MoodleSyncEvent::CourseAbsent {
            shortname: "ovle-e1".into(),
            caused_by: Uuid::nil(),
        },
        at(1),
    );
    let v = f.view(&delete).unwrap();
    assert_eq!(v.moodle.state, MoodleState::InSync);
    assert_eq!(v.moodle.pending_steps, 0);
}
