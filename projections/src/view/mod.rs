//! Read models served by the HTTP API: the view of an OpenVLE event (with its Moodle side) and
//! the view of an environment.
//!
//! Pure: the caller reads the streams and feeds their events in log order. An event's view is
//! the fold of its `event` stream (the *desired* state, folded as the saga folds it:
//! [`Desired`]) and of its `moodle_sync` stream (the *recorded* Moodle state); the saga's
//! rulebook ([`outstanding`]) compares the two and gives the Moodle state a user sees, the same
//! the saga plans from:
//!
//! | state        | when                                                                  |
//! |--------------|-----------------------------------------------------------------------|
//! | `disabled`   | the Moodle integration is switched off                                |
//! | `not_linked` | the event was deployed from an environment without a template course |
//! | `failed`     | the saga (or one of the event's participants it still has to serve) is parked |
//! | `pending`    | the recorded Moodle state differs from the desired one                |
//! | `in_sync`    | otherwise                                                             |
//!
//! `pending_steps` counts the outstanding Moodle changes ([`Outstanding::changes`]): one for a
//! missing course, one for its visibility, one per participant whose enrolment differs from the
//! desired one, one for a course still to delete (or look for, or record as kept).

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use domain::course::CourseVisibility;
use domain::environment::{Environment, EnvironmentEvent};
use domain::event::{EventEvent, Status};
use domain::moodle_sync::{
    DriftNote, EnrolmentState, MoodleSync, MoodleSyncEvent, RecordedParticipant,
};
use domain::participant::Participant;

use crate::saga::{outstanding, Desired, Outstanding, SagaSettings, Want};

/// The Moodle state of an event as the view shows it: the saga's own.
pub use crate::saga::SyncState as MoodleState;

/// `GET /api/v1/events/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    pub environment_id: String,
    pub name: String,
    /// `deployed`, `ended` or `deleted`.
    pub status: Status,
    pub participants: Vec<Participant>,
    /// When the event runs (RFC 3339, UTC; absent when not given): its course's dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub moodle: MoodleView,
}

/// The Moodle side of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoodleView {
    pub state: MoodleState,
    pub course_id: Option<i64>,
    pub course_visible: Option<bool>,
    pub enrolments: Vec<EnrolmentView>,
    pub pending_steps: u64,
    pub last_error: Option<ErrorView>,
    /// What the last reconcile saw differ between the log and Moodle (absent when nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftNote>,
}

/// One participant's enrolment as recorded (or still to be made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentView {
    pub participant_id: String,
    pub moodle_user_id: Option<i64>,
    pub role_id: Option<i64>,
    pub state: EnrolmentViewState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentViewState {
    Pending,
    Enrolled,
    Suspended,
    Unenrolled,
    /// Moodle refused them and the saga still has to serve them: a person must act.
    Failed,
}

/// The last Moodle failure recorded for the event (cleared by a later success or a resume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The fold behind an [`EventView`]: feed it the events of both streams in log order.
/// Serialisable so the read models can store it as a checkpoint and apply only the tail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventFold {
    /// Desired state: the fold of the `event` stream, as the saga folds it.
    desired: Desired,
    /// The one thing of the `event` stream the saga does not need.
    environment_id: String,
    /// Recorded state: the fold of the `moodle_sync` stream.
    pub sync: MoodleSync,
    last_error: Option<ErrorView>,
}

impl EventFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies an event of the `event` stream (the next one of the stream: the view counts
    /// their sequence numbers itself).
    pub fn apply_event(&mut self, event: EventEvent) {
        if let EventEvent::Deployed { environment_id, .. } = &event {
            self.environment_id = environment_id.clone();
        }
        let sequence = self.desired.sequence + 1;
        self.desired.apply(sequence, event);
    }

    /// Applies an event of the `moodle_sync` stream, recorded at `at`.
    pub fn apply_sync(&mut self, event: MoodleSyncEvent, at: DateTime<Utc>) {
        let error = match &event {
            MoodleSyncEvent::StepFailed { code, message, .. } => Some(Some(ErrorView {
                code: code.clone(),
                message: message.clone(),
                at,
            })),
            MoodleSyncEvent::Parked { code, reason, .. } => Some(Some(ErrorView {
                code: code.clone(),
                message: reason.clone(),
                at,
            })),
            MoodleSyncEvent::ParticipantParked {
                participant_id,
                code,
                reason,
                ..
            } => Some(Some(ErrorView {
                code: code.clone(),
                message: format!("participant {participant_id}: {reason}"),
                at,
            })),
            MoodleSyncEvent::Resumed { .. } => Some(None),
            MoodleSyncEvent::CourseLost { .. }
            | MoodleSyncEvent::UserLinkLost { .. }
            | MoodleSyncEvent::DriftObserved { .. }
            | MoodleSyncEvent::CourseDuplicationStarted { .. }
            | MoodleSyncEvent::CourseDuplicationRefused { .. } => None,
            // A success: the last failure is over unless something is still parked.
            _ => Some(None),
        };
        self.sync.apply(event);
        if let Some(error) = error {
            let still_parked = self.sync.parked.is_some()
                || self.sync.participants.values().any(|p| p.parked.is_some());
            if error.is_some() || !still_parked {
                self.last_error = error;
            }
        }
    }

    /// Whether the event was ever deployed (otherwise there is nothing to show).
    pub fn is_deployed(&self) -> bool {
        self.desired.status != Status::NotDeployed
    }

    /// The desired state folded so far (the planner's input).
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// The view, or None for an event never deployed; an `at_start` course counts as not yet
    /// started (see [`EventFold::view_at`]).
    pub fn view(&self, settings: &SagaSettings) -> Option<EventView> {
        self.view_at(settings, None)
    }

    /// The view as of `now_ms` (unix ms): what an `at_start` course should be depends on it.
    pub fn view_at(&self, settings: &SagaSettings, now_ms: Option<i64>) -> Option<EventView> {
        if !self.is_deployed() {
            return None;
        }
        let d = &self.desired;
        Some(EventView {
            id: d.id.clone(),
            environment_id: self.environment_id.clone(),
            name: d.name.clone(),
            status: d.status,
            participants: d
                .participants
                .iter()
                .map(|p| p.participant.clone())
                .collect(),
            starts_at: d
                .schedule
                .starts_at
                .and_then(|t| DateTime::from_timestamp(t, 0)),
            ends_at: d
                .schedule
                .ends_at
                .and_then(|t| DateTime::from_timestamp(t, 0)),
            moodle: self.moodle_view(settings, now_ms),
        })
    }

    fn moodle_view(&self, settings: &SagaSettings, now_ms: Option<i64>) -> MoodleView {
        let sync = &self.sync;
        // Only an at_start course depends on the time: spare the copy for every other.
        let timed;
        let desired = match (now_ms, &self.desired.course) {
            (Some(now), Some(spec)) if spec.visibility == CourseVisibility::AtStart => {
                timed = self.desired.clone().at(now);
                &timed
            }
            _ => &self.desired,
        };
        let out = outstanding(desired, sync, settings);
        MoodleView {
            state: out.state(),
            course_id: sync.course_id,
            course_visible: if sync.course_deleted {
                None
            } else {
                sync.course_visible
            },
            enrolments: self.enrolments(&out),
            pending_steps: out.changes(),
            last_error: self.last_error.clone(),
            drift: sync.drift.clone(),
        }
    }

    /// The enrolment of every participant the rulebook compared; when it compared nothing
    /// (integration off, no template), what was recorded, if anything.
    fn enrolments(&self, out: &Outstanding<'_>) -> Vec<EnrolmentView> {
        if out.not_compared.is_some() {
            let d = &self.desired;
            return d
                .participants
                .iter()
                .chain(&d.removed)
                .filter_map(|p| {
                    let id = &p.participant.id;
                    let r = self.sync.participant(id)?;
                    Some(enrolment_view(id, r, None, r.parked.is_some()))
                })
                .collect();
        }
        out.participants
            .iter()
            .filter_map(|c| {
                let id = &c.desired.participant.id;
                let wanted_role = match c.want {
                    Want::Enrolled(role) => Some(role),
                    Want::Out => None,
                };
                match c.recorded {
                    Some(r) => Some(enrolment_view(id, r, wanted_role, c.is_parked())),
                    None => wanted_role.map(|role| EnrolmentView {
                        participant_id: id.clone(),
                        moodle_user_id: None,
                        role_id: Some(role),
                        state: EnrolmentViewState::Pending,
                    }),
                }
            })
            .collect()
    }
}

fn enrolment_view(
    id: &str,
    r: &RecordedParticipant,
    wanted_role: Option<i64>,
    failed: bool,
) -> EnrolmentView {
    let state = if failed {
        EnrolmentViewState::Failed
    } else {
        match r.enrolment {
            Some(EnrolmentState::Enrolled) => EnrolmentViewState::Enrolled,
            Some(EnrolmentState::Suspended) => EnrolmentViewState::Suspended,
            Some(EnrolmentState::Unenrolled) => EnrolmentViewState::Unenrolled,
            None => EnrolmentViewState::Pending,
        }
    };
    EnrolmentView {
        participant_id: id.to_string(),
        moodle_user_id: r.moodle_user_id,
        role_id: r.role_id.or(wanted_role),
        state,
    }
}

/// `GET /api/v1/environments/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentView {
    pub id: String,
    pub name: String,
    pub moodle_template_course_id: Option<i64>,
    /// The environment's own course shape (each null: the global default applies).
    #[serde(default)]
    pub moodle_category_id: Option<i64>,
    #[serde(default)]
    pub moodle_course_fullname_template: Option<String>,
    #[serde(default)]
    pub moodle_course_shortname_template: Option<String>,
    #[serde(default)]
    pub moodle_course_idnumber_template: Option<String>,
    #[serde(default)]
    pub moodle_course_visibility: Option<CourseVisibility>,
    #[serde(default)]
    pub moodle_archive_category_id: Option<i64>,
}

impl EnvironmentView {
    /// The view of an environment, or None when it was never created.
    pub fn of(environment: &Environment) -> Option<EnvironmentView> {
        let shape = &environment.course;
        environment.created.then(|| EnvironmentView {
            id: environment.id.clone(),
            name: environment.name.clone(),
            moodle_template_course_id: environment.template_course_id,
            moodle_category_id: shape.category_id,
            moodle_course_fullname_template: shape.fullname_template.clone(),
            moodle_course_shortname_template: shape.shortname_template.clone(),
            moodle_course_idnumber_template: shape.idnumber_template.clone(),
            moodle_course_visibility: shape.visibility,
            moodle_archive_category_id: shape.archive_category_id,
        })
    }

    /// Folds an environment's events (in stream order) into its view.
    pub fn fold(events: impl IntoIterator<Item = EnvironmentEvent>) -> Option<EnvironmentView> {
        let mut env = Environment::default();
        for e in events {
            env.apply(e);
        }
        Self::of(&env)
    }
}

#[cfg(test)]
mod tests;
