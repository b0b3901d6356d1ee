//! The outcome policy, given/when/then.

use std::time::Duration;

use domain::moodle_sync::RecordedParticipant;
use uuid::Uuid;

use super::*;
use crate::saga::Cause;

const CAUSE: Uuid = Uuid::from_u128(7);

fn step() -> Step {
    Step::DeleteCourse {
        course_id: 42,
        cause: Cause {
            event_id: CAUSE,
            sequence: 3,
        },
    }
}

fn transient(code: &str) -> Failure {
    Failure {
        code: code.into(),
        message: "Moodle did not answer".into(),
        transient: true,
        participant_id: None,
    }
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff: Backoff {
            base: Duration::from_millis(1_000),
            max: Duration::from_millis(300_000),
        },
    }
}

fn result<'a>(step: &'a Step, failure: Option<&'a Failure>) -> StepResult<'a> {
    StepResult {
        step,
        failure,
        wait_until: None,
    }
}

#[test]
fn a_transient_failure_is_recorded_and_retried_with_the_attempt_counted() {
    // Given a record with two failures in a row, when the step fails transiently again,
    let recorded = MoodleSync {
        attempts: 2,
        ..MoodleSync::default()
    };
    let f = settle(transient("http_503"), &recorded);
    let attempt = attempt_of(&recorded);
    let step = step();
    // then attempt 3 is recorded, not parked,
    assert_eq!(attempt, 3);
    let facts = failure_facts(&step, &f, attempt, 20, 4);
    assert_eq!(
        facts,
        vec![MoodleSyncEvent::StepFailed {
            step: "delete_course".into(),
            code: "http_503".into(),
            message: "Moodle did not answer".into(),
            attempt: 3,
            transient: true,
            participant_id: None,
            caused_by: CAUSE,
        }]
    );
    // and retried after 2–4 s with the work row's attempts set to 3.
    let next = after_step(&result(&step, Some(&f)), false, attempt, 0, &policy(20), 0);
    assert_eq!(
        next,
        Next::Retry {
            delay_ms: 2_000,
            attempts: 3,
            reason: "http_503: Moodle did not answer".into()
        }
    );
    assert_eq!(outcome_label(&result(&step, Some(&f))), "transient");
}

#[test]
fn the_last_attempt_allowed_parks_with_the_reason() {
    let step = step();
    let f = transient("http_503");
    // Given max_attempts 3, when attempt 3 fails transiently, then it is parked.
    assert!(gave_up(3, 3));
    assert!(!gave_up(3, 2));
    let facts = failure_facts(&step, &f, 3, 3, 4);
    assert_eq!(facts.len(), 2);
    assert_eq!(
        facts[1],
        MoodleSyncEvent::Parked {
            step: "delete_course".into(),
            code: "http_503".into(),
            reason: "gave up after 3 attempts (max_attempts 3): Moodle did not answer".into(),
            caused_by: CAUSE,
            at_sequence: Some(4),
        }
    );
    assert_eq!(
        after_step(&result(&step, Some(&f)), false, 3, 2, &policy(3), 0),
        Next::Park {
            reason: "delete_course failed 3 times in a row, parked (max_attempts 3): \
                     http_503: Moodle did not answer"
                .into()
        }
    );
}

#[test]
fn max_attempts_zero_never_parks() {
    let step = step();
    let f = transient("http_503");
    // Given max_attempts 0, when the step has failed a great many times, then it still retries.
    for attempt in [1, 20, 1_000, u32::MAX] {
        assert!(!gave_up(0, attempt));
        assert_eq!(failure_facts(&step, &f, attempt, 0, 4).len(), 1);
        let next = after_step(&result(&step, Some(&f)), false, attempt, 0, &policy(0), 0);
        assert!(matches!(next, Next::Retry { .. }), "{next:?}");
    }
    // And the delay keeps to the cap (50 % of it without jitter).
    let next = after_step(&result(&step, Some(&f)), false, u32::MAX, 0, &policy(0), 0);
    assert!(
        matches!(
            next,
            Next::Retry {
                delay_ms: 150_000,
                ..
            }
        ),
        "{next:?}"
    );
}

#[test]
fn a_permanent_failure_parks_at_once() {
    let step = step();
    let f = Failure::permanent("nopermissions", "no".into());
    let facts = failure_facts(&step, &f, 1, 20, 4);
    assert_eq!(facts.len(), 2);
    assert!(
        matches!(&facts[1], MoodleSyncEvent::Parked { reason, code, .. } if reason == "no" && code == "nopermissions")
    );
    assert_eq!(
        after_step(&result(&step, Some(&f)), false, 1, 0, &policy(20), 0),
        Next::Park {
            reason: "delete_course failed: nopermissions: no".into()
        }
    );
    assert_eq!(outcome_label(&result(&step, Some(&f))), "parked");
}

#[test]
fn settling_an_adopted_course_retries_a_missing_enrolment_instance() {
    let wsnoinstance = Failure::permanent("wsnoinstance", "no manual enrolment".into());
    // Given a course adopted after a lost answer, when Moodle has no enrolment instance
    // yet, then it is transient (the restore is still running);
    let adopted = MoodleSync {
        course_adopted: true,
        ..MoodleSync::default()
    };
    assert!(settle(wsnoinstance.clone(), &adopted).transient);
    // for a course whose creation answer arrived, it stays the configuration problem.
    assert!(!settle(wsnoinstance, &MoodleSync::default()).transient);
    // Another permanent code on an adopted course stays permanent.
    let other = Failure::permanent("nopermissions", "no".into());
    assert!(!settle(other, &adopted).transient);
}

#[test]
fn settling_leaves_an_unknown_outcome_transient() {
    // Given a call whose outcome is unknown (a timeout), when settled against any record,
    // then it stays transient: the next look-up resolves it.
    let unknown = transient("timeout");
    for recorded in [
        MoodleSync::default(),
        MoodleSync {
            course_adopted: true,
            ..MoodleSync::default()
        },
    ] {
        assert_eq!(settle(unknown.clone(), &recorded), unknown);
    }
}

#[test]
fn a_duplication_still_landing_waits_without_counting_an_attempt() {
    let step = step();
    let r = StepResult {
        step: &step,
        failure: None,
        wait_until: Some((1_700_000_000_000, "still landing")),
    };
    assert_eq!(outcome_label(&r), "waiting");
    // Given a claim handed with 4 attempts, when the step must wait, then the row keeps 4,
    // even when the record was fenced meanwhile.
    for fenced in [false, true] {
        assert_eq!(
            after_step(&r, fenced, 9, 4, &policy(1), 0),
            Next::Wait {
                at: 1_700_000_000_000,
                attempts: 4,
                reason: "still landing".into()
            }
        );
    }
    // A failure wins over the wait.
    let f = transient("timeout");
    let r = StepResult {
        failure: Some(&f),
        ..r
    };
    assert!(matches!(
        after_step(&r, false, 1, 0, &policy(20), 0),
        Next::Retry { .. }
    ));
}

#[test]
fn a_success_goes_on_unless_another_writer_moved_the_record() {
    let step = step();
    assert_eq!(outcome_label(&result(&step, None)), "ok");
    assert_eq!(
        after_step(&result(&step, None), false, 1, 0, &policy(20), 0),
        Next::Continue
    );
    assert_eq!(
        after_step(&result(&step, None), true, 1, 0, &policy(20), 0),
        Next::HandBack
    );
}

#[test]
fn an_announced_duplication_is_due() {
    let started = MoodleSyncEvent::CourseDuplicationStarted {
        attempt: Uuid::from_u128(1),
        shortname: "ovle-1".into(),
        template_course_id: 2,
        started_at_ms: 3,
        caused_by: CAUSE,
    };
    assert!(call_due(&[started]));
    assert!(!call_due(&[MoodleSyncEvent::CourseKept {
        course_id: 1,
        caused_by: CAUSE
    }]));
    assert!(!call_due(&[]));
}

#[test]
fn interruptions_count_an_attempt_only_when_something_failed() {
    let p = policy(20);
    // Given a claim with 2 attempts:
    assert_eq!(
        interrupted(
            Interruption::StepBudget {
                step: "enrol",
                steps: 64
            },
            2,
            &p,
            0
        ),
        Next::Retry {
            delay_ms: 500,
            attempts: 2,
            reason: "still enrol after 64 steps; handed back".into()
        }
    );
    assert_eq!(
        interrupted(Interruption::RecordConflict, 2, &p, 0),
        Next::Retry {
            delay_ms: 500,
            attempts: 2,
            reason: "the saga's record kept changing concurrently".into()
        }
    );
    assert_eq!(
        interrupted(Interruption::NoClient, 2, &p, 12_345),
        Next::Retry {
            delay_ms: 300_000,
            attempts: 3,
            reason: "the Moodle integration is enabled but this worker has no Moodle client".into()
        }
    );
    // The database down: attempt 3's backoff (2–4 s).
    assert_eq!(
        interrupted(Interruption::Error("pool timed out".into()), 2, &p, 2_000),
        Next::Retry {
            delay_ms: 4_000,
            attempts: 3,
            reason: "pool timed out".into()
        }
    );
    assert_eq!(
        interrupted(Interruption::LogUnreadable("bad json".into()), 2, &p, 0),
        Next::Park {
            reason: "the log cannot be read: bad json".into()
        }
    );
    assert_eq!(
        interrupted(Interruption::RecordRefused("no".into()), 2, &p, 0),
        Next::Park {
            reason: "no".into()
        }
    );
}

#[test]
fn a_failed_event_says_why() {
    let mut recorded = MoodleSync::default();
    assert_eq!(failed_reason(SyncState::InSync, &recorded), None);
    assert_eq!(failed_reason(SyncState::Failed, &recorded), None);
    for (id, code) in [("p1", "invalid_username"), ("p2", "ambiguous_user")] {
        recorded.participants.insert(
            id.into(),
            RecordedParticipant {
                parked: Some((code.into(), "why".into())),
                ..RecordedParticipant::default()
            },
        );
    }
    assert_eq!(
        done(SyncState::Failed, &recorded),
        Next::Done {
            state: "failed",
            reason: Some(
                "participant p1: invalid_username: why; participant p2: ambiguous_user: why".into()
            )
        }
    );
    // A parked saga wins over its participants.
    recorded.parked = Some(("enrol".into(), "wsnoinstance".into(), "none".into()));
    assert_eq!(
        failed_reason(SyncState::Failed, &recorded).as_deref(),
        Some("enrol failed: wsnoinstance: none")
    );
    // Not failed: no reason even with parked parts.
    assert_eq!(
        done(SyncState::InSync, &recorded),
        Next::Done {
            state: "in_sync",
            reason: None
        }
    );
}

#[test]
fn an_empty_plan_waits_for_the_start_of_an_at_start_event_and_is_done_otherwise() {
    use crate::saga::plan::Plan;
    use crate::saga::SyncState;
    let idle_plan = |state, wake_at_ms| Plan {
        state,
        steps: Vec::new(),
        wake_at_ms,
    };
    let r = MoodleSync::default();
    match idle(&idle_plan(SyncState::InSync, Some(5_000)), &r) {
        Next::WakeAt { at, .. } => assert_eq!(at, 5_000),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        idle(&idle_plan(SyncState::InSync, None), &r),
        Next::Done { .. }
    ));
    // A person must act first: no wake-up hides that.
    assert!(matches!(
        idle(&idle_plan(SyncState::Failed, Some(5_000)), &r),
        Next::Done { .. }
    ));
}
