//! The Moodle saga's own record: one `moodle_sync` stream per OpenVLE event (same id).
//!
//! The saga decides what to call from the log, calls Moodle, then records what Moodle now holds
//! as facts in this stream. Folding it gives the *recorded* Moodle state of an event; the saga
//! compares that with the *desired* state folded from the event's own stream. Every fact names the
//! domain event that caused it (`caused_by`, the deterministic event id of that domain event).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use crate::DomainError;

mod events;

pub use events::*;

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
    /// The domain event the park was recorded for: a later change of the participant (a
    /// corrected email, a username sent) lifts it.
    #[serde(default)]
    pub parked_for: Option<uuid::Uuid>,
    /// What the link was made by (None: recorded before it was kept).
    #[serde(default)]
    pub linked_by: Option<LinkKey>,
    /// Roles the account still holds in the course that the participant no longer has (a role
    /// change gives the new role first, then takes these away).
    #[serde(default)]
    pub extra_roles: Vec<i64>,
    /// The `ParticipantChanged` last written to the account (MOODLE_UPDATE_ACCOUNTS).
    #[serde(default)]
    pub account_updated_for: Option<uuid::Uuid>,
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
    /// The event stream's sequence the saga had read when it parked (see `Parked`).
    #[serde(default)]
    pub parked_at: Option<u64>,
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
    /// The shortname the last announced duplication asked for (found again by it).
    #[serde(default)]
    pub duplicating_as: Option<String>,
    /// The recorded course's names, category and dates, as far as known.
    #[serde(default)]
    pub course_props: CourseProps,
}

/// What the saga asks of its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MoodleSyncCommand {
    /// Record facts the saga established in Moodle, in order.
    Record(Vec<MoodleSyncEvent>),
    /// An operator resumes a parked saga.
    Resume { by: String },
    /// An operator retries one parked participant.
    ResumeParticipant { participant_id: String, by: String },
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
            | MoodleSyncEvent::CourseUpdated { course_id, .. }
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
            MoodleSyncCommand::ResumeParticipant { participant_id, by } => {
                let parked = self
                    .participants
                    .get(&participant_id)
                    .is_some_and(|p| p.parked.is_some());
                if parked {
                    sink.write(
                        MoodleSyncEvent::ParticipantResumed { participant_id, by },
                        self,
                    )
                    .await;
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
                category_id,
                ..
            } => {
                self.course_props = CourseProps {
                    shortname: Some(shortname.clone()),
                    category_id: Some(category_id),
                    ..CourseProps::default()
                };
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
                key,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                if p.moodle_user_id != Some(moodle_user_id) {
                    // Another account: nothing known of it in the course yet.
                    p.enrolment = None;
                    p.role_id = None;
                    p.extra_roles.clear();
                }
                p.linked_by = key;
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
                // Enrolling with another role adds it in Moodle: the old one is still held.
                if let Some(old) = p.role_id {
                    if old != role_id
                        && p.enrolment != Some(EnrolmentState::Unenrolled)
                        && !p.extra_roles.contains(&old)
                    {
                        p.extra_roles.push(old);
                    }
                }
                p.extra_roles.retain(|r| *r != role_id);
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
                // Moodle drops the roles of an account without enrolment in the course.
                p.extra_roles.clear();
                self.succeeded();
            }
            MoodleSyncEvent::RoleUnassigned {
                participant_id,
                role_id,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.extra_roles.retain(|r| *r != role_id);
                p.parked = None;
                self.succeeded();
            }
            MoodleSyncEvent::AccountUpdated {
                participant_id,
                caused_by,
                ..
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.account_updated_for = Some(caused_by);
                p.parked = None;
                self.succeeded();
            }
            MoodleSyncEvent::CourseUpdated { props, .. } => {
                self.course_props.merge(&props);
                if let Some(s) = props.shortname {
                    self.shortname = Some(s);
                }
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
                self.course_props = CourseProps::default();
                self.course_visible = None;
                for p in self.participants.values_mut() {
                    p.enrolment = None;
                    p.role_id = None;
                    p.extra_roles.clear();
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
                caused_by,
            } => {
                let p = self.participants.entry(participant_id).or_default();
                p.parked = Some((code, reason));
                p.parked_for = Some(caused_by);
            }
            MoodleSyncEvent::Parked {
                step,
                code,
                reason,
                at_sequence,
                ..
            } => {
                self.parked = Some((step, code, reason));
                self.parked_at = at_sequence;
            }
            MoodleSyncEvent::CourseDuplicationRefused { attempt, .. } => {
                if self
                    .duplication
                    .as_ref()
                    .is_some_and(|d| d.attempt == attempt)
                {
                    self.duplication = None;
                }
            }
            MoodleSyncEvent::ParkLifted { .. } => {
                self.parked = None;
                self.parked_at = None;
                self.attempts = 0;
            }
            MoodleSyncEvent::ParticipantResumed { participant_id, .. } => {
                if let Some(p) = self.participants.get_mut(&participant_id) {
                    p.parked = None;
                }
            }
            MoodleSyncEvent::Resumed { .. } => {
                self.parked = None;
                self.parked_at = None;
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
                shortname,
                ..
            } => {
                self.duplication = Some(DuplicationStarted {
                    attempt,
                    started_at_ms,
                });
                self.duplicating_as = Some(shortname);
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
mod tests;
