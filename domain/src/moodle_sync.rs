//! The Moodle saga's own record: one `moodle_sync` stream per OpenVLE event (same id).
//!
//! The saga decides what to call from the log, calls Moodle, then records what Moodle now holds
//! as facts in this stream. Folding it gives the *recorded* Moodle state of an event; the saga
//! compares that with the *desired* state folded from the event's own stream. Every fact names the
//! domain event that caused it (`caused_by`, the deterministic event id of that domain event).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};

use crate::DomainError;

/// How a participant was tied to a Moodle account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Found an existing account by the match field.
    Matched,
    /// Created the account.
    Created,
}

/// An enrolment's state in Moodle as the saga last recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentState {
    Enrolled,
    Suspended,
    Unenrolled,
}

/// What kind of difference a reconcile saw between the log and Moodle (the `kind` label of the
/// `openvle_moodle_drift` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The course the log implies is not in Moodle (deleted by hand, Moodle replaced).
    CourseMissing,
    /// A course that should not exist does (an event deleted with course deletion on).
    CourseExists,
    /// The course is shown where it should be hidden, or the other way round.
    CourseVisibility,
    /// A participant's linked Moodle account is gone.
    Account,
    /// Enrolled, suspended or not enrolled differently from the log.
    Enrolment,
    /// Enrolled without the role the log gives.
    Role,
}

impl DriftKind {
    pub const ALL: [DriftKind; 6] = [
        DriftKind::CourseMissing,
        DriftKind::CourseExists,
        DriftKind::CourseVisibility,
        DriftKind::Account,
        DriftKind::Enrolment,
        DriftKind::Role,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::CourseMissing => "course_missing",
            DriftKind::CourseExists => "course_exists",
            DriftKind::CourseVisibility => "course_visibility",
            DriftKind::Account => "account",
            DriftKind::Enrolment => "enrolment",
            DriftKind::Role => "role",
        }
    }
}

/// One difference between the Moodle state the log implies and the state Moodle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftNote {
    pub kind: DriftKind,
    /// What differs, for a person (`course`, `enrolment of s1`, …).
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    pub expected: String,
    pub actual: String,
}

/// What the saga records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MoodleSyncEvent {
    /// The event's course exists in Moodle. `adopted` is true when the saga found it by its
    /// shortname (a previous attempt had created it) instead of creating it in this step.
    CourseDuplicated {
        course_id: i64,
        shortname: String,
        template_course_id: i64,
        category_id: i64,
        adopted: bool,
        caused_by: Uuid,
    },
    /// A participant is tied to a Moodle account.
    UserLinked {
        participant_id: String,
        moodle_user_id: i64,
        username: String,
        how: LinkKind,
        caused_by: Uuid,
    },
    Enrolled {
        participant_id: String,
        moodle_user_id: i64,
        role_id: i64,
        caused_by: Uuid,
    },
    Suspended {
        participant_id: String,
        moodle_user_id: i64,
        caused_by: Uuid,
    },
    Unenrolled {
        participant_id: String,
        moodle_user_id: i64,
        caused_by: Uuid,
    },
    CourseHidden {
        course_id: i64,
        caused_by: Uuid,
    },
    /// Made visible again (a reconcile correcting a hand-made change).
    CourseShown {
        course_id: i64,
        caused_by: Uuid,
    },
    CourseDeleted {
        course_id: i64,
        caused_by: Uuid,
    },
    /// The recorded course is gone from Moodle (seen by reconcile): forget it and its
    /// enrolments, so the saga creates it again.
    CourseLost {
        course_id: i64,
        caused_by: Uuid,
    },
    /// A recorded user link is stale (the account is gone): forget it, match again.
    UserLinkLost {
        participant_id: String,
        moodle_user_id: i64,
        caused_by: Uuid,
    },
    /// A step failed; `transient` failures are retried with backoff.
    StepFailed {
        step: String,
        code: String,
        message: String,
        attempt: u32,
        transient: bool,
        participant_id: Option<String>,
        caused_by: Uuid,
    },
    /// Moodle refuses this participant (e.g. an invalid username): they alone wait for a person.
    ParticipantParked {
        participant_id: String,
        code: String,
        reason: String,
        caused_by: Uuid,
    },
    /// The whole saga of this event waits for a person (a permanent failure).
    Parked {
        step: String,
        code: String,
        reason: String,
        caused_by: Uuid,
    },
    /// An operator resumed a parked saga (parked participants are retried too).
    Resumed {
        by: String,
    },
    /// A reconcile compared Moodle with the log: `drift` is every difference it saw (empty: none
    /// any more). It replaces the previous observation. `applied` tells whether the reconcile
    /// also recorded the corrections (facts about what Moodle really holds, recorded right after
    /// this, from which the saga converges); otherwise the drift is only reported.
    DriftObserved {
        drift: Vec<DriftNote>,
        applied: bool,
        by: String,
    },
    /// The course was looked up by its shortname and is not in Moodle (e.g. an event deleted
    /// after a creation whose outcome was never known): nothing to delete.
    CourseAbsent {
        shortname: String,
        caused_by: Uuid,
    },
    /// The event was deleted while `MOODLE_DELETE_COURSE_ON_EVENT_DELETE` was off: its course is
    /// kept (as an ended event's), for good. Recorded so that turning the setting on later does
    /// not reach back and delete courses that were kept.
    CourseKept {
        course_id: i64,
        caused_by: Uuid,
    },
    /// Written just before the saga asks Moodle to duplicate the template. Moodle creates the
    /// course row (with the shortname) only at the end of its backup and restore, a second or
    /// much more later; a worker that finds this record but no course knows that a duplication
    /// may still be running in Moodle, and must not start a second one (two calls in flight
    /// would make two courses with one shortname). `attempt` names this one call.
    CourseDuplicationStarted {
        attempt: Uuid,
        shortname: String,
        template_course_id: i64,
        started_at_ms: i64,
        caused_by: Uuid,
    },
}

/// A duplication the saga announced and whose course is not recorded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicationStarted {
    pub attempt: Uuid,
    /// When it was announced (milliseconds since the Unix epoch, the runner's clock).
    pub started_at_ms: i64,
}

impl DomainEvent for MoodleSyncEvent {
    fn event_type(&self) -> String {
        match self {
            MoodleSyncEvent::CourseDuplicated { .. } => "CourseDuplicated",
            MoodleSyncEvent::UserLinked { .. } => "UserLinked",
            MoodleSyncEvent::Enrolled { .. } => "Enrolled",
            MoodleSyncEvent::Suspended { .. } => "Suspended",
            MoodleSyncEvent::Unenrolled { .. } => "Unenrolled",
            MoodleSyncEvent::CourseHidden { .. } => "CourseHidden",
            MoodleSyncEvent::CourseShown { .. } => "CourseShown",
            MoodleSyncEvent::CourseDeleted { .. } => "CourseDeleted",
            MoodleSyncEvent::CourseLost { .. } => "CourseLost",
            MoodleSyncEvent::UserLinkLost { .. } => "UserLinkLost",
            MoodleSyncEvent::StepFailed { .. } => "StepFailed",
            MoodleSyncEvent::ParticipantParked { .. } => "ParticipantParked",
            MoodleSyncEvent::Parked { .. } => "Parked",
            MoodleSyncEvent::Resumed { .. } => "Resumed",
            MoodleSyncEvent::DriftObserved { .. } => "DriftObserved",
            MoodleSyncEvent::CourseAbsent { .. } => "CourseAbsent",
            MoodleSyncEvent::CourseDuplicationStarted { .. } => "CourseDuplicationStarted",
            MoodleSyncEvent::CourseKept { .. } => "CourseKept",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// A participant's recorded Moodle side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedParticipant {
    pub moodle_user_id: Option<i64>,
    pub username: Option<String>,
    pub link: Option<LinkKind>,
    pub role_id: Option<i64>,
    pub enrolment: Option<EnrolmentState>,
    /// Set while Moodle refuses this participant; cleared by `Resumed` or a later success.
    pub parked: Option<(String, String)>,
}

/// The last failure, for views and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFailure {
    pub step: String,
    pub code: String,
    pub message: String,
    pub attempt: u32,
    pub transient: bool,
}

/// The recorded Moodle state of one OpenVLE event (the fold of its `moodle_sync` stream).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoodleSync {
    pub course_id: Option<i64>,
    pub shortname: Option<String>,
    /// The course was found by its shortname after an unknown outcome rather than created by a
    /// call whose answer arrived: it may still be being restored.
    #[serde(default)]
    pub course_adopted: bool,
    pub course_visible: Option<bool>,
    pub course_deleted: bool,
    pub participants: BTreeMap<String, RecordedParticipant>,
    /// Why the saga is parked (`step`, `code`, `reason`), if it is.
    pub parked: Option<(String, String, String)>,
    pub last_failure: Option<LastFailure>,
    /// Failed attempts since the last success of that step (drives backoff).
    pub attempts: u32,
    /// The differences the last reconcile saw between the log and Moodle (empty: none).
    #[serde(default)]
    pub drift: Vec<DriftNote>,
    /// The course was kept when the event was deleted (see `CourseKept`).
    #[serde(default)]
    pub course_kept: bool,
    /// The duplication announced last, while no course is recorded (None once one is).
    #[serde(default)]
    pub duplication: Option<DuplicationStarted>,
}

/// What the saga asks of its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MoodleSyncCommand {
    /// Record facts the saga established in Moodle, in order.
    Record(Vec<MoodleSyncEvent>),
    /// An operator resumes a parked saga.
    Resume { by: String },
}

impl MoodleSync {
    /// Refuses a record that contradicts the stream (a second course, a fact about a course that
    /// was never recorded), so two workers racing on one event can never both record a course.
    pub fn check(&self, event: &MoodleSyncEvent) -> Result<(), DomainError> {
        match event {
            MoodleSyncEvent::CourseDuplicated { course_id, .. } => match self.course_id {
                Some(existing) if existing != *course_id => Err(DomainError::SagaInvariant(
                    format!("course {existing} is already recorded for this event"),
                )),
                _ => Ok(()),
            },
            MoodleSyncEvent::CourseDuplicationStarted { .. } => match self.course_id {
                Some(existing) => Err(DomainError::SagaInvariant(format!(
                    "course {existing} is already recorded for this event: nothing to duplicate"
                ))),
                None => Ok(()),
            },
            MoodleSyncEvent::CourseHidden { course_id, .. }
            | MoodleSyncEvent::CourseShown { course_id, .. }
            | MoodleSyncEvent::CourseDeleted { course_id, .. }
            | MoodleSyncEvent::CourseKept { course_id, .. }
            | MoodleSyncEvent::CourseLost { course_id, .. } => {
                if self.course_id == Some(*course_id) {
                    Ok(())
                } else {
                    Err(DomainError::SagaInvariant(format!(
                        "course {course_id} is not this event's recorded course"
                    )))
                }
            }
            _ => Ok(()),
        }
    }

    pub fn participant(&self, id: &str) -> Option<&RecordedParticipant> {
        self.participants.get(id)
    }
}

impl Aggregate for MoodleSync {
    const TYPE: &'static str = "moodle_sync";
    type Command = MoodleSyncCommand;
    type Event = MoodleSyncEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            MoodleSyncCommand::Record(events) => {
                for event in events {
                    self.check(&event)?;
                    sink.write(event, self).await;
                }
            }
            MoodleSyncCommand::Resume { by } => {
                let anything_parked =
                    self.parked.is_some() || self.participants.values().any(|p| p.parked.is_some());
                if anything_parked {
                    sink.write(MoodleSyncEvent::Resumed { by }, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            MoodleSyncEvent::CourseDuplicated {
                course_id,
                shortname,
                adopted,
                ..
            } => {
                self.course_id = Some(course_id);
                self.shortname = Some(shortname);
                self.course_adopted = adopted;
                self.duplication = None;
                self.course_visible = Some(true);
                self.course_deleted = false;
                self.succeeded();
            }
            MoodleSyncEvent::UserLinked {
                participant_id,
                moodle_user_id,
                username,
                how,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.moodle_user_id = Some(moodle_user_id);
                p.username = Some(username);
                p.link = Some(how);
                p.parked = None;
                self.succeeded();
            }
            MoodleSyncEvent::Enrolled {
                participant_id,
                moodle_user_id,
                role_id,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.moodle_user_id = Some(moodle_user_id);
                p.role_id = Some(role_id);
                p.enrolment = Some(EnrolmentState::Enrolled);
                p.parked = None;
                self.succeeded();
            }
            MoodleSyncEvent::Suspended { participant_id, .. } => {
                let p = self.participants.entry(participant_id).or_default();
                p.enrolment = Some(EnrolmentState::Suspended);
                self.succeeded();
            }
            MoodleSyncEvent::Unenrolled { participant_id, .. } => {
                let p = self.participants.entry(participant_id).or_default();
                p.enrolment = Some(EnrolmentState::Unenrolled);
                self.succeeded();
            }
            MoodleSyncEvent::CourseHidden { .. } => {
                self.course_visible = Some(false);
                self.succeeded();
            }
            MoodleSyncEvent::CourseShown { .. } => {
                self.course_visible = Some(true);
                self.succeeded();
            }
            MoodleSyncEvent::CourseDeleted { .. } => {
                self.course_deleted = true;
                self.course_visible = None;
                self.succeeded();
            }
            MoodleSyncEvent::CourseLost { .. } => {
                self.course_id = None;
                self.duplication = None;
                self.shortname = None;
                self.course_visible = None;
                for p in self.participants.values_mut() {
                    p.enrolment = None;
                    p.role_id = None;
                }
            }
            MoodleSyncEvent::UserLinkLost { participant_id, .. } => {
                if let Some(p) = self.participants.get_mut(&participant_id) {
                    *p = RecordedParticipant::default();
                }
            }
            MoodleSyncEvent::StepFailed {
                step,
                code,
                message,
                attempt,
                transient,
                ..
            } => {
                self.attempts = attempt;
                self.last_failure = Some(LastFailure {
                    step,
                    code,
                    message,
                    attempt,
                    transient,
                });
            }
            MoodleSyncEvent::ParticipantParked {
                participant_id,
                code,
                reason,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.parked = Some((code, reason));
            }
            MoodleSyncEvent::Parked {
                step, code, reason, ..
            } => {
                self.parked = Some((step, code, reason));
            }
            MoodleSyncEvent::Resumed { .. } => {
                self.parked = None;
                self.attempts = 0;
                for p in self.participants.values_mut() {
                    p.parked = None;
                }
            }
            MoodleSyncEvent::DriftObserved { drift, .. } => {
                self.drift = drift;
            }
            MoodleSyncEvent::CourseDuplicationStarted {
                attempt,
                started_at_ms,
                ..
            } => {
                self.duplication = Some(DuplicationStarted {
                    attempt,
                    started_at_ms,
                });
            }
            MoodleSyncEvent::CourseKept { .. } => {
                self.course_kept = true;
                self.succeeded();
            }
            MoodleSyncEvent::CourseAbsent { .. } => {
                self.course_id = None;
                self.shortname = None;
                self.course_visible = None;
                self.course_deleted = true;
                self.succeeded();
            }
        }
    }
}

impl MoodleSync {
    fn succeeded(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

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
}
