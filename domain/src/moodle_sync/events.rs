//! The facts of a `moodle_sync` stream: what the saga saw Moodle do, each naming its cause.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cqrs_es::DomainEvent;

/// How a participant was tied to a Moodle account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Found an existing account by the match field.
    Matched,
    /// Created the account.
    Created,
}

/// The value a participant was linked by: the match field and what OpenVLE sent in it (for a
/// created account, the key it was created for). A participant added again with another value
/// is linked again (see the rulebook's stale links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkKey {
    pub field: crate::settings::UserMatchField,
    pub value: String,
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
    /// The course was renamed, moved or re-dated by hand.
    CourseShape,
    /// A participant's linked Moodle account is gone.
    Account,
    /// Enrolled, suspended or not enrolled differently from the log.
    Enrolment,
    /// Enrolled without the role the log gives.
    Role,
}

impl DriftKind {
    pub const ALL: [DriftKind; 7] = [
        DriftKind::CourseMissing,
        DriftKind::CourseExists,
        DriftKind::CourseVisibility,
        DriftKind::CourseShape,
        DriftKind::Account,
        DriftKind::Enrolment,
        DriftKind::Role,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::CourseMissing => "course_missing",
            DriftKind::CourseExists => "course_exists",
            DriftKind::CourseVisibility => "course_visibility",
            DriftKind::CourseShape => "course_shape",
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
    /// The course holds these names, category or dates now (set by the engine, or as found
    /// when adopted). Only the fields given are known; the others are as they were.
    CourseUpdated {
        course_id: i64,
        props: CourseProps,
        caused_by: Uuid,
    },
    /// A participant is tied to a Moodle account.
    UserLinked {
        participant_id: String,
        moodle_user_id: i64,
        username: String,
        how: LinkKind,
        caused_by: Uuid,
        /// What the participant was linked by (absent in records made before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<LinkKey>,
        /// For a matched account, how its other fields differ from the participant's (another
        /// email in username mode: the username is the identity), for the story.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        differs: Option<String>,
    },
    /// A role the participant no longer has in the event was taken from them in the course
    /// (`core_role_unassign_roles`), after the new one was given.
    RoleUnassigned {
        participant_id: String,
        moodle_user_id: i64,
        role_id: i64,
        caused_by: Uuid,
    },
    /// The participant's changed name, email or idnumber was written to their Moodle account
    /// (MOODLE_UPDATE_ACCOUNTS); `caused_by` is the `ParticipantChanged`.
    AccountUpdated {
        participant_id: String,
        moodle_user_id: i64,
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
        /// The sequence of the event's own stream the saga had read when it parked: a later
        /// rename, template change, end or delete lifts the park (None: only a `Resumed` does,
        /// as for parks recorded before this was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_sequence: Option<u64>,
    },
    /// An operator resumed a parked saga (parked participants are retried too).
    Resumed {
        by: String,
    },
    /// Moodle answered the announced duplication `attempt` with an error: it made nothing, so no
    /// copy of it can still be running (nothing to wait for before calling again or giving up).
    CourseDuplicationRefused {
        attempt: Uuid,
        caused_by: Uuid,
    },
    /// The saga's park was lifted by a change of the event that can make the failed step right
    /// or moot (a rename or new dates, another template, the end, the delete): `caused_by`.
    ParkLifted {
        caused_by: Uuid,
    },
    /// An operator retried one parked participant (the rest stays as it is).
    ParticipantResumed {
        participant_id: String,
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
            MoodleSyncEvent::CourseUpdated { .. } => "CourseUpdated",
            MoodleSyncEvent::UserLinked { .. } => "UserLinked",
            MoodleSyncEvent::RoleUnassigned { .. } => "RoleUnassigned",
            MoodleSyncEvent::AccountUpdated { .. } => "AccountUpdated",
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
            MoodleSyncEvent::ParticipantResumed { .. } => "ParticipantResumed",
            MoodleSyncEvent::ParkLifted { .. } => "ParkLifted",
            MoodleSyncEvent::CourseDuplicationRefused { .. } => "CourseDuplicationRefused",
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

/// What is known of a course's names, category and dates (unix seconds; an end of 0 is none).
/// `None`: not known, or not to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseProps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idnumber: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startdate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enddate: Option<i64>,
}

impl CourseProps {
    /// `self` with what `newer` knows.
    pub fn merge(&mut self, newer: &CourseProps) {
        fn take<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                slot.clone_from(v);
            }
        }
        take(&mut self.fullname, &newer.fullname);
        take(&mut self.shortname, &newer.shortname);
        take(&mut self.idnumber, &newer.idnumber);
        take(&mut self.category_id, &newer.category_id);
        take(&mut self.startdate, &newer.startdate);
        take(&mut self.enddate, &newer.enddate);
    }

    pub fn is_empty(&self) -> bool {
        *self == CourseProps::default()
    }
}
