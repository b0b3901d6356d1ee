//! Read models served by the HTTP API: the view of an OpenVLE event (with its Moodle side) and
//! the view of an environment.
//!
//! Pure: the caller reads the streams and feeds their events in log order. An event's view is
//! the fold of its `event` stream (the *desired* state) and of its `moodle_sync` stream (the
//! *recorded* Moodle state); comparing the two gives the Moodle state a user sees:
//!
//! | state        | when                                                                  |
//! |--------------|-----------------------------------------------------------------------|
//! | `disabled`   | the Moodle integration is switched off                                |
//! | `not_linked` | the event was deployed from an environment without a template course |
//! | `failed`     | the saga (or one of the event's participants) is parked               |
//! | `pending`    | the recorded Moodle state differs from the desired one                |
//! | `in_sync`    | otherwise                                                             |
//!
//! `pending_steps` counts the outstanding Moodle changes: one for a missing course, one for its
//! visibility, one per participant whose enrolment differs from the desired one, one for a course
//! still to delete.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use domain::environment::{Environment, EnvironmentEvent};
use domain::event::{EventEvent, Status, VleEvent};
use domain::moodle_sync::{
    DriftNote, EnrolmentState, MoodleSync, MoodleSyncEvent, RecordedParticipant,
};
use domain::participant::{Participant, Role};

/// What the view needs to know of the Moodle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewSettings {
    /// Whether the Moodle integration is switched on (MOODLE_ENABLED).
    pub moodle_enabled: bool,
    /// MOODLE_DELETE_COURSE_ON_EVENT_DELETE.
    pub delete_course_on_event_delete: bool,
    /// Moodle role id of instructors (default 3).
    pub instructor_role_id: i64,
    /// Moodle role id of students (default 5).
    pub student_role_id: i64,
}

impl ViewSettings {
    /// The integration switched off, default role ids.
    pub fn disabled() -> Self {
        ViewSettings {
            moodle_enabled: false,
            delete_course_on_event_delete: false,
            instructor_role_id: 3,
            student_role_id: 5,
        }
    }

    /// The integration switched on with default role ids, courses kept on delete.
    pub fn enabled() -> Self {
        ViewSettings {
            moodle_enabled: true,
            ..Self::disabled()
        }
    }

    /// The Moodle role id for an OpenVLE role.
    pub fn role_id(&self, role: Role) -> i64 {
        match role {
            Role::Instructor => self.instructor_role_id,
            Role::Student => self.student_role_id,
        }
    }
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self::disabled()
    }
}

/// `GET /api/v1/events/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    pub environment_id: String,
    pub name: String,
    /// `deployed`, `ended` or `deleted`.
    pub status: Status,
    pub participants: Vec<Participant>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoodleState {
    Disabled,
    NotLinked,
    Pending,
    InSync,
    Failed,
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
    /// Desired state: the fold of the `event` stream.
    pub event: VleEvent,
    /// Recorded state: the fold of the `moodle_sync` stream.
    pub sync: MoodleSync,
    last_error: Option<ErrorView>,
    removed: Vec<String>,
}

/// What a participant's enrolment should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desire {
    Enrolled(i64),
    NotEnrolled,
}

impl EventFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies an event of the `event` stream.
    pub fn apply_event(&mut self, event: EventEvent) {
        if let EventEvent::ParticipantRemoved { participant } = &event {
            if !self.removed.contains(&participant.id) {
                self.removed.push(participant.id.clone());
            }
        }
        if let EventEvent::ParticipantAdded { participant } = &event {
            self.removed.retain(|id| id != &participant.id);
        }
        self.event.apply(event);
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
            | MoodleSyncEvent::CourseDuplicationStarted { .. } => None,
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
        self.event.status != Status::NotDeployed
    }

    /// The view, or None for an event never deployed.
    pub fn view(&self, settings: &ViewSettings) -> Option<EventView> {
        if !self.is_deployed() {
            return None;
        }
        let e = &self.event;
        Some(EventView {
            id: e.id.clone(),
            environment_id: e.environment_id.clone(),
            name: e.name.clone(),
            status: e.status,
            participants: e.participants.clone(),
            moodle: self.moodle_view(settings),
        })
    }

    fn moodle_view(&self, settings: &ViewSettings) -> MoodleView {
        let sync = &self.sync;
        let active = settings.moodle_enabled && self.event.template_course_id.is_some();
        let mut enrolments = Vec::new();
        let mut pending_steps = 0u64;
        let mut participant_parked = false;

        if !active {
            // Nothing will happen: show what was recorded, if anything.
            for p in &self.event.participants {
                if let Some(r) = sync.participant(&p.id) {
                    enrolments.push(enrolment_view(&p.id, r, None));
                }
            }
            for id in &self.removed {
                if let Some(r) = sync.participant(id) {
                    enrolments.push(enrolment_view(id, r, None));
                }
            }
        } else {
            let deleting = self.event.status == Status::Deleted;
            // The setting decides once, when the event is deleted (as the planner does).
            let delete_course =
                deleting && settings.delete_course_on_event_delete && !sync.course_kept;
            let has_course = sync.course_id.is_some() && !sync.course_deleted;
            // A deleted event whose course never existed, or is gone, needs nothing.
            let never_created = deleting && !has_course;
            let wants_course = !(delete_course || never_created);
            if delete_course {
                if has_course {
                    pending_steps += 1;
                }
            } else if wants_course {
                if !has_course {
                    pending_steps += 1;
                }
                if deleting && !sync.course_kept {
                    pending_steps += 1;
                }
                let visible = self.event.status == Status::Deployed;
                if sync.course_visible != Some(visible) && (has_course || !visible) {
                    pending_steps += 1;
                }
            }
            let mut desires: Vec<(&str, Desire)> = Vec::new();
            if wants_course {
                for p in &self.event.participants {
                    let desire = match (self.event.status, p.role) {
                        (Status::Deployed, role) | (_, role @ Role::Instructor) => {
                            Desire::Enrolled(settings.role_id(role))
                        }
                        _ => Desire::NotEnrolled,
                    };
                    desires.push((&p.id, desire));
                }
                for id in &self.removed {
                    desires.push((id, Desire::NotEnrolled));
                }
            }
            for (id, desire) in desires {
                let recorded = sync.participant(id);
                let satisfied = match (desire, recorded) {
                    (Desire::Enrolled(role), Some(r)) => {
                        has_course
                            && r.enrolment == Some(EnrolmentState::Enrolled)
                            && r.role_id == Some(role)
                    }
                    (Desire::Enrolled(_), None) => false,
                    (Desire::NotEnrolled, Some(r)) => {
                        !has_course || r.enrolment != Some(EnrolmentState::Enrolled)
                    }
                    (Desire::NotEnrolled, None) => true,
                };
                if !satisfied {
                    pending_steps += 1;
                }
                let wanted_role = match desire {
                    Desire::Enrolled(role) => Some(role),
                    Desire::NotEnrolled => None,
                };
                match recorded {
                    Some(r) => {
                        if r.parked.is_some() && !satisfied {
                            participant_parked = true;
                        }
                        enrolments.push(enrolment_view(id, r, wanted_role));
                    }
                    None if matches!(desire, Desire::Enrolled(_)) => {
                        enrolments.push(EnrolmentView {
                            participant_id: id.to_string(),
                            moodle_user_id: None,
                            role_id: wanted_role,
                            state: EnrolmentViewState::Pending,
                        })
                    }
                    None => {}
                }
            }
        }

        let state = if !settings.moodle_enabled {
            MoodleState::Disabled
        } else if self.event.template_course_id.is_none() {
            MoodleState::NotLinked
        } else if sync.parked.is_some() || participant_parked {
            MoodleState::Failed
        } else if pending_steps > 0 {
            MoodleState::Pending
        } else {
            MoodleState::InSync
        };
        MoodleView {
            state,
            course_id: sync.course_id,
            course_visible: if sync.course_deleted {
                None
            } else {
                sync.course_visible
            },
            enrolments,
            pending_steps: if active { pending_steps } else { 0 },
            last_error: self.last_error.clone(),
            drift: sync.drift.clone(),
        }
    }
}

fn enrolment_view(id: &str, r: &RecordedParticipant, wanted_role: Option<i64>) -> EnrolmentView {
    let state = if r.parked.is_some() {
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
}

impl EnvironmentView {
    /// The view of an environment, or None when it was never created.
    pub fn of(environment: &Environment) -> Option<EnvironmentView> {
        environment.created.then(|| EnvironmentView {
            id: environment.id.clone(),
            name: environment.name.clone(),
            moodle_template_course_id: environment.template_course_id,
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
mod tests {
    use super::*;
    use uuid::Uuid;

    fn person(id: &str, role: Role) -> Participant {
        Participant {
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
        assert!(EventFold::new().view(&ViewSettings::enabled()).is_none());
    }

    #[test]
    fn disabled_and_not_linked() {
        let mut f = EventFold::new();
        f.apply_event(deployed(Some(42)));
        let v = f.view(&ViewSettings::disabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::Disabled);
        assert_eq!(v.moodle.pending_steps, 0);
        assert!(v.moodle.enrolments.is_empty());
        assert_eq!(v.status, Status::Deployed);
        assert_eq!(v.participants.len(), 2);

        let mut f = EventFold::new();
        f.apply_event(deployed(None));
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::NotLinked);
        assert_eq!(v.moodle.pending_steps, 0);
        assert_eq!(v.moodle.course_id, None);
    }

    #[test]
    fn pending_until_everything_is_recorded() {
        let mut f = EventFold::new();
        f.apply_event(deployed(Some(42)));
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::Pending);
        // course + two enrolments
        assert_eq!(v.moodle.pending_steps, 3);
        assert_eq!(v.moodle.enrolments.len(), 2);
        assert_eq!(v.moodle.enrolments[0].state, EnrolmentViewState::Pending);
        assert_eq!(v.moodle.enrolments[0].role_id, Some(3));
        assert_eq!(v.moodle.enrolments[1].role_id, Some(5));

        let v = synced().view(&ViewSettings::enabled()).unwrap();
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.participants.len(), 1);
        assert_eq!(v.moodle.state, MoodleState::Pending);
        assert_eq!(v.moodle.pending_steps, 1);
        f.apply_sync(unenrolled("s", 101), at(4));
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::InSync);
        assert_eq!(v.moodle.enrolments[1].state, EnrolmentViewState::Unenrolled);

        // End: students leave, instructors stay, the course is hidden.
        let mut f = synced();
        f.apply_event(EventEvent::Ended);
        let v = f.view(&ViewSettings::enabled()).unwrap();
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::InSync);
        assert_eq!(v.moodle.course_visible, Some(false));
    }

    #[test]
    fn delete_with_and_without_course_deletion() {
        let mut f = synced();
        f.apply_event(EventEvent::Deleted);
        let delete = ViewSettings {
            delete_course_on_event_delete: true,
            ..ViewSettings::enabled()
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
        assert_eq!(
            f.view(&ViewSettings::enabled())
                .unwrap()
                .moodle
                .pending_steps,
            3
        );
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
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
            },
            at(2),
        );
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.state, MoodleState::Failed);
        assert_eq!(v.moodle.last_error.as_ref().unwrap().code, "invalidrecord");
        f.apply_sync(MoodleSyncEvent::Resumed { by: "op".into() }, at(3));
        let v = f.view(&ViewSettings::enabled()).unwrap();
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
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
        let v = f.view(&ViewSettings::enabled()).unwrap();
        assert_eq!(v.moodle.last_error.unwrap().code, "invalid_username");
    }

    #[test]
    fn view_serialises_as_the_contract_says() {
        let v = synced().view(&ViewSettings::enabled()).unwrap();
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
                moodle_template_course_id: Some(42)
            }
        );
        assert!(EnvironmentView::fold(vec![]).is_none());
    }
}
