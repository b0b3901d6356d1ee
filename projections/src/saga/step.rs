//! The steps the planner gives the runner: each one batch of Moodle calls (or a record without a
//! call), with everything the runner needs to make them and record what they did.

use serde::{Deserialize, Serialize};

use domain::moodle_sync::DuplicationStarted;

use super::desired::Cause;
use super::settings::{NewUserPassword, RemovalMode, UserMatchField, UsernameCollision};
use super::username::{NewUsername, Refusal};

/// Find the event's course by shortname; duplicate the template only if it is absent (the runner
/// always looks first, and adopts a course it finds). When `visible` is false the course is
/// created hidden and the runner records `CourseHidden` right after `CourseDuplicated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsureCourse {
    pub shortname: String,
    pub fullname: String,
    pub template_course_id: i64,
    pub category_id: i64,
    pub visible: bool,
    /// The idnumber the engine gives the course (a found course carrying it is the event's).
    #[serde(default)]
    pub idnumber: Option<String>,
    /// Deployed with a course shape (false: an event from before, found by `ovle-<id>`).
    #[serde(default)]
    pub shaped: bool,
    pub cause: Cause,
    /// The duplication announced last and not answered yet (see [`crate::saga::duplication`]).
    pub in_flight: Option<DuplicationStarted>,
}

/// One participant to tie to a Moodle account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToLink {
    pub participant_id: String,
    /// The value looked up under the match field: what OpenVLE sent ([`UserMatchField::key_of`]),
    /// never a value the engine derived.
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Given to a new account.
    #[serde(default)]
    pub idnumber: Option<String>,
    /// The username of the account to create when none matches, or why Moodle would refuse
    /// one (then the participant is parked if no account matches).
    pub new_username: Result<NewUsername, Refusal>,
    pub cause: Cause,
}

/// Look every participant up in one batch (by `field`), then create the missing ones in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkUsers {
    pub field: UserMatchField,
    /// The auth plugin of new accounts.
    pub auth: String,
    /// Whether Moodle mails new accounts a password.
    #[serde(default)]
    pub password: NewUserPassword,
    /// A derived username another account holds.
    #[serde(default)]
    pub collision: UsernameCollision,
    pub users: Vec<UserToLink>,
}

impl LinkUsers {
    /// Whether new accounts get `createpassword` (Moodle makes a password and mails it): with
    /// MOODLE_NEW_USER_PASSWORD=email, for auth plugins whose passwords Moodle keeps.
    pub fn createpassword(&self) -> bool {
        self.password == NewUserPassword::Email && domain::settings::is_internal_auth(&self.auth)
    }
}

/// Take a role the participant no longer has from their account in the course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnassignItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    pub role_id: i64,
    pub cause: Cause,
}

/// Write a participant's changed names, email and idnumber to their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub idnumber: Option<String>,
    /// The `ParticipantChanged` written (recorded as `AccountUpdated`'s cause).
    pub change: Cause,
    /// The participant's latest event (a refusal parks them for it).
    pub cause: Cause,
}

/// Enrol (or re-activate) one participant with a role: `enrol_manual_enrol_users` is an upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    pub role_id: i64,
    pub cause: Cause,
}

/// Take one participant out of the course (unenrol or suspend, per the step's mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    /// The role recorded for the enrolment (suspending re-sends it: `enrol_manual_enrol_users`
    /// with `suspend=1` needs one, and the recorded one adds nothing).
    pub role_id: i64,
    /// The saga does not know whether the participant is enrolled (an enrol whose outcome was
    /// unknown, a course found again): the runner looks at the course's participants first and
    /// records those absent as unenrolled without a call (suspending someone absent would enrol
    /// them; unenrolling an account that is gone is refused).
    #[serde(default)]
    pub look_first: bool,
    pub cause: Cause,
}

/// A participant Moodle would refuse: recorded as parked without a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkItem {
    pub participant_id: String,
    pub refusal: Refusal,
    pub cause: Cause,
}

/// One batched step. Each needs at most a handful of calls whatever the number of participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Record participants Moodle would refuse (no call).
    ParkParticipants(Vec<ParkItem>),
    EnsureCourse(EnsureCourse),
    LinkUsers(LinkUsers),
    /// All enrolments in one batch (the runner chunks by Moodle's request limits).
    Enrol {
        course_id: i64,
        items: Vec<EnrolItem>,
    },
    /// `core_role_unassign_roles`: roles participants no longer have, after the new ones are given.
    UnassignRoles {
        course_id: i64,
        items: Vec<UnassignItem>,
    },
    /// `core_user_update_users` (MOODLE_UPDATE_ACCOUNTS).
    UpdateAccounts(Vec<UpdateItem>),
    /// All removals in one batch.
    Remove {
        course_id: i64,
        mode: RemovalMode,
        items: Vec<RemoveItem>,
    },
    /// `core_course_update_courses(visible)`.
    SetCourseVisible {
        course_id: i64,
        visible: bool,
        cause: Cause,
    },
    /// `core_course_update_courses(fullname, shortname, idnumber, categoryid, startdate,
    /// enddate)`: the fields the course does not hold yet.
    UpdateCourse {
        course_id: i64,
        props: domain::moodle_sync::CourseProps,
        cause: Cause,
    },
    /// `core_course_delete_courses`.
    DeleteCourse {
        course_id: i64,
        cause: Cause,
    },
    /// Record that a deleted event's course is kept (no call).
    KeepCourse {
        course_id: i64,
        cause: Cause,
    },
    /// A deleted event (course deletion on) without a recorded course: a creation whose outcome
    /// was never known (or never recorded) may have left one. Look it up by shortname: adopt it
    /// (then `DeleteCourse`), or record `CourseAbsent`.
    FindCourseToDelete {
        shortname: String,
        template_course_id: i64,
        /// As [`EnsureCourse`]'s: only the event's own course is ever deleted.
        #[serde(default)]
        idnumber: Option<String>,
        #[serde(default)]
        shaped: bool,
        cause: Cause,
        /// A duplication that may still land the course (see [`crate::saga::duplication`]).
        in_flight: Option<DuplicationStarted>,
    },
}

impl Step {
    /// The step's stable name (recorded in `StepFailed` and `Parked`).
    pub fn name(&self) -> &'static str {
        match self {
            Step::ParkParticipants(_) => "park_participants",
            Step::EnsureCourse(_) => "ensure_course",
            Step::LinkUsers(_) => "link_users",
            Step::Enrol { .. } => "enrol",
            Step::UnassignRoles { .. } => "unassign_roles",
            Step::UpdateAccounts(_) => "update_accounts",
            Step::Remove {
                mode: RemovalMode::Unenrol,
                ..
            } => "unenrol",
            Step::Remove {
                mode: RemovalMode::Suspend,
                ..
            } => "suspend",
            Step::SetCourseVisible { visible: false, .. } => "hide_course",
            Step::SetCourseVisible { visible: true, .. } => "show_course",
            Step::UpdateCourse { .. } => "update_course",
            Step::DeleteCourse { .. } => "delete_course",
            Step::FindCourseToDelete { .. } => "find_course_to_delete",
            Step::KeepCourse { .. } => "keep_course",
        }
    }

    /// The latest domain event behind this step (its `causation_id`).
    pub fn cause(&self) -> Cause {
        let latest = |causes: &mut dyn Iterator<Item = Cause>| {
            causes
                .max_by_key(|c| c.sequence)
                .unwrap_or_else(Cause::none)
        };
        match self {
            Step::ParkParticipants(items) => latest(&mut items.iter().map(|i| i.cause)),
            Step::EnsureCourse(e) => e.cause,
            Step::LinkUsers(l) => latest(&mut l.users.iter().map(|u| u.cause)),
            Step::Enrol { items, .. } => latest(&mut items.iter().map(|i| i.cause)),
            Step::UnassignRoles { items, .. } => latest(&mut items.iter().map(|i| i.cause)),
            Step::UpdateAccounts(items) => latest(&mut items.iter().map(|i| i.cause)),
            Step::Remove { items, .. } => latest(&mut items.iter().map(|i| i.cause)),
            Step::SetCourseVisible { cause, .. }
            | Step::UpdateCourse { cause, .. }
            | Step::DeleteCourse { cause, .. }
            | Step::FindCourseToDelete { cause, .. }
            | Step::KeepCourse { cause, .. } => *cause,
        }
    }

    /// How many participants (or courses) the step touches.
    pub fn len(&self) -> usize {
        match self {
            Step::ParkParticipants(items) => items.len(),
            Step::LinkUsers(l) => l.users.len(),
            Step::Enrol { items, .. } => items.len(),
            Step::UnassignRoles { items, .. } => items.len(),
            Step::UpdateAccounts(items) => items.len(),
            Step::Remove { items, .. } => items.len(),
            Step::EnsureCourse(_)
            | Step::SetCourseVisible { .. }
            | Step::UpdateCourse { .. }
            | Step::DeleteCourse { .. }
            | Step::FindCourseToDelete { .. }
            | Step::KeepCourse { .. } => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
