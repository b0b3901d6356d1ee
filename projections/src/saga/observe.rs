//! What reconcile reads from Moodle and what it reports: the runner reads what [`to_observe`]
//! asks, [`reconcile`](super::reconcile()) compares it with the log.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use domain::moodle_sync::{DriftNote, MoodleSync, MoodleSyncEvent};

use super::desired::Desired;
use super::outstanding::in_scope;
use super::settings::SagaSettings;

/// A course as Moodle shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedCourse {
    pub id: i64,
    pub shortname: String,
    pub category_id: i64,
    /// None when Moodle does not tell (the web-service user cannot see it).
    pub visible: Option<bool>,
    /// Its names, category and dates as Moodle shows them (None: not shown).
    #[serde(default)]
    pub props: domain::moodle_sync::CourseProps,
}

/// One enrolment in the event's course, as Moodle shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedEnrolment {
    pub user_id: i64,
    pub username: String,
    pub email: Option<String>,
    /// Absent when Moodle does not show it (empty, or not visible to the web-service user).
    #[serde(default)]
    pub idnumber: Option<String>,
    pub roles: Vec<i64>,
    pub suspended: bool,
}

/// What Moodle holds for one OpenVLE event (read by the runner as [`Observe`] asks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The course with the recorded id, when one is recorded and it exists.
    pub recorded_course: Option<ObservedCourse>,
    /// The course with the event's shortname, when looked up and found.
    pub course_by_shortname: Option<ObservedCourse>,
    /// The enrolments of `recorded_course` (empty when it is absent).
    pub enrolments: Vec<ObservedEnrolment>,
    /// Recorded Moodle user ids whose account no longer exists.
    pub missing_users: BTreeSet<i64>,
}

/// What the runner must read from Moodle for one OpenVLE event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observe {
    /// Look this course id up (the recorded course).
    pub course_id: Option<i64>,
    /// Look the course up by this shortname (when the recorded course is absent, or none is).
    pub shortname: String,
    /// Check these recorded accounts still exist.
    pub user_ids: Vec<i64>,
}

/// One difference, for people and for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRow {
    pub event_id: String,
    #[serde(flatten)]
    pub note: DriftNote,
}

/// The outcome of comparing one OpenVLE event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub rows: Vec<DriftRow>,
    /// Facts to record (with `--apply`) so that the saga converges Moodle.
    pub corrections: Vec<MoodleSyncEvent>,
}

impl Reconciliation {
    pub fn notes(&self) -> Vec<DriftNote> {
        self.rows.iter().map(|r| r.note.clone()).collect()
    }
}

/// What to read from Moodle for this event, or None when it has no Moodle side.
pub fn to_observe(
    desired: &Desired,
    recorded: &MoodleSync,
    settings: &SagaSettings,
) -> Option<Observe> {
    if !in_scope(desired, settings) {
        return None;
    }
    let mut user_ids: Vec<i64> = recorded
        .participants
        .values()
        .filter_map(|p| p.moodle_user_id)
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    Some(Observe {
        course_id: recorded.course_id,
        shortname: desired.shortname(),
        user_ids,
    })
}
