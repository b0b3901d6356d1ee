use super::*;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

type Saga = TestFramework<MoodleSync>;

fn dup(course_id: i64) -> MoodleSyncEvent {
    MoodleSyncEvent::CourseDuplicated {
        course_id,
        shortname: "ovle-x".into(),
        template_course_id: 2,
        category_id: 3,
        adopted: false,
        caused_by: Uuid::nil(),
    }
}

#[tokio::test]
async fn a_second_course_is_refused() {
    Saga::with(())
        .given(vec![dup(10)])
        .when_async(MoodleSyncCommand::Record(vec![dup(11)]))
        .await
        .then_expect_error_message(
            "saga record refused: course 10 is already recorded for this event",
        );
    Saga::with(())
        .given(vec![dup(10)])
        .when_async(MoodleSyncCommand::Record(vec![dup(10)]))
        .await
        .then_expect_events(vec![dup(10)]);
}

#[tokio::test]
async fn a_lost_course_may_be_created_again() {
    let lost = MoodleSyncEvent::CourseLost {
        course_id: 10,
        caused_by: Uuid::nil(),
    };
    Saga::with(())
        .given(vec![dup(10), lost])
        .when_async(MoodleSyncCommand::Record(vec![dup(11)]))
        .await
        .then_expect_events(vec![dup(11)]);
}

#[tokio::test]
async fn hiding_another_course_is_refused() {
    Saga::with(())
        .given(vec![dup(10)])
        .when_async(MoodleSyncCommand::Record(vec![
            MoodleSyncEvent::CourseHidden {
                course_id: 99,
                caused_by: Uuid::nil(),
            },
        ]))
        .await
        .then_expect_error_message(
            "saga record refused: course 99 is not this event's recorded course",
        );
}

#[tokio::test]
async fn resume_only_when_parked() {
    Saga::with(())
        .given(vec![dup(10)])
        .when_async(MoodleSyncCommand::Resume { by: "op".into() })
        .await
        .then_expect_events(vec![]);
    let parked = MoodleSyncEvent::Parked {
        step: "enrol".into(),
        code: "wsnoinstance".into(),
        reason: "no manual enrolment".into(),
        caused_by: Uuid::nil(),
        at_sequence: Some(1),
    };
    Saga::with(())
        .given(vec![dup(10), parked])
        .when_async(MoodleSyncCommand::Resume { by: "op".into() })
        .await
        .then_expect_events(vec![MoodleSyncEvent::Resumed { by: "op".into() }]);
}

#[test]
fn fold_tracks_enrolment_and_parking() {
    let mut s = MoodleSync::default();
    s.apply(dup(10));
    s.apply(MoodleSyncEvent::Enrolled {
        participant_id: "p1".into(),
        moodle_user_id: 5,
        role_id: 5,
        caused_by: Uuid::nil(),
    });
    s.apply(MoodleSyncEvent::Suspended {
        participant_id: "p1".into(),
        moodle_user_id: 5,
        caused_by: Uuid::nil(),
    });
    assert_eq!(
        s.participant("p1").and_then(|p| p.enrolment),
        Some(EnrolmentState::Suspended)
    );
    s.apply(MoodleSyncEvent::ParticipantParked {
        participant_id: "p2".into(),
        code: "invalid_username".into(),
        reason: "bad".into(),
        caused_by: Uuid::nil(),
    });
    assert!(s.participant("p2").and_then(|p| p.parked.clone()).is_some());
    s.apply(MoodleSyncEvent::Resumed { by: "op".into() });
    assert!(s.participant("p2").and_then(|p| p.parked.clone()).is_none());
}

#[tokio::test]
async fn one_parked_participant_is_retried_alone() {
    let parked = |id: &str| MoodleSyncEvent::ParticipantParked {
        participant_id: id.into(),
        code: "email_taken".into(),
        reason: "another account".into(),
        caused_by: Uuid::nil(),
    };
    let resume = |id: &str| MoodleSyncCommand::ResumeParticipant {
        participant_id: id.into(),
        by: "op".into(),
    };
    Saga::with(())
        .given(vec![dup(10), parked("p1"), parked("p2")])
        .when_async(resume("p1"))
        .await
        .then_expect_events(vec![MoodleSyncEvent::ParticipantResumed {
            participant_id: "p1".into(),
            by: "op".into(),
        }]);
    // Not parked (or unknown): nothing is recorded.
    Saga::with(())
        .given(vec![dup(10), parked("p2")])
        .when_async(resume("p1"))
        .await
        .then_expect_events(vec![]);
    let mut s = MoodleSync::default();
    for e in [dup(10), parked("p1"), parked("p2")] {
        s.apply(e);
    }
    s.apply(MoodleSyncEvent::ParticipantResumed {
        participant_id: "p1".into(),
        by: "op".into(),
    });
    assert!(s.participants["p1"].parked.is_none());
    assert!(s.participants["p2"].parked.is_some());
}
