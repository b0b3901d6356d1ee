//! What a Moodle exception means, whichever release sent it.
//!
//! Moodle's `exception` class changes between releases (5.1 namespaces `moodle_exception` and
//! `invalid_parameter_exception`) and its `message` is localised, so neither is read here: the
//! meaning comes from the `errorcode` and from what was asked. The second matters because 5.1 answers
//! a function that does not exist, a course that does not exist and a user id that does not
//! exist with the same body (`invalidrecordunknown`, "Can't find data record in database."),
//! where 4.4 named the table; each function the engine calls can only be missing one kind of
//! record (shared/moodle/observed-4.4.md, observed-5.1.md), so the function tells which; a name
//! the engine does not call is taken for a function that does not exist.

use serde::Serialize;

use super::ErrorClass;

/// What a Moodle exception means to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The token is unknown (`invalidtoken`).
    InvalidToken,
    /// The function is not in the token's service, or the token expired (`accessexception`).
    NotInService,
    /// The function does not exist on this Moodle.
    UnknownFunction,
    /// A course asked for does not exist (a template to duplicate, a course to read or change).
    MissingCourse,
    /// The category to duplicate into does not exist.
    MissingCategory,
    /// A user id to enrol does not exist (deleted in Moodle: a stale link).
    MissingUser,
    /// Another record does not exist.
    MissingRecord,
    /// The course shortname is taken (`shortnametaken`): the course may be ours already.
    ShortnameTaken,
    /// Moodle refused a value; with debugging off it does not say which (`invalidparameter`).
    InvalidParameter,
    /// Another account holds the email (`useremailduplicate`, a warning of
    /// `core_user_update_users`; creation says only `invalidparameter`).
    EmailTaken,
    /// The account is one the web-service user may not change: an administrator's or the
    /// guest account (`usernotupdatedadmin`, `usernotupdatedguest`, `usernotupdatedremote`).
    AccountProtected,
    /// The web-service user may not assign this role (`wsusercannotassign`).
    RoleNotAssignable,
    /// The course has no enabled manual enrolment instance (`wsnoinstance`).
    NoManualEnrolment,
    /// The web-service user lacks a capability.
    MissingCapability,
    /// The site's password policy refused a password (its text is the errorcode).
    PasswordPolicy,
    /// Moodle was busy (locks, database, maintenance): a retry may work.
    Busy,
    /// Anything else.
    Other,
}

/// The table named by 4.4's "Can't find data record in database table X." that tells the
/// refusal on its own.
const TABLES: &[(&str, Refusal)] = &[
    ("external_functions", Refusal::UnknownFunction),
    ("course_categories", Refusal::MissingCategory),
    ("course", Refusal::MissingCourse),
    ("user", Refusal::MissingUser),
];

impl Refusal {
    /// What an exception with `errorcode` (and `message`) answered to a call of `function`
    /// means. The message is only read for the table name of a 4.4 missing record; when it is
    /// not there (5.1, or a translation that moves it) the function decides.
    pub fn classify(function: &str, errorcode: &str, message: &str) -> Refusal {
        match errorcode.trim() {
            "invalidtoken" => Refusal::InvalidToken,
            "accessexception" => Refusal::NotInService,
            "invalidrecord" | "invalidrecordunknown" => missing(function, message),
            // 4.4's `enrol_user()` for a user id that does not exist (5.1: a missing record).
            "codingerror" if function == "enrol_manual_enrol_users" => Refusal::MissingUser,
            "invalidcourseid" => Refusal::MissingCourse,
            "shortnametaken" => Refusal::ShortnameTaken,
            "invalidparameter" | "useremailinvalid" => Refusal::InvalidParameter,
            // Warnings of core_user_update_users (observed on 4.4); a deleted account is gone.
            "invaliduserid" | "usernotupdateddeleted" => Refusal::MissingUser,
            "useremailduplicate" => Refusal::EmailTaken,
            "usernotupdatedadmin" | "usernotupdatedguest" | "usernotupdatedremote" => {
                Refusal::AccountProtected
            }
            "wsusercannotassign" => Refusal::RoleNotAssignable,
            "wsnoinstance" => Refusal::NoManualEnrolment,
            "nopermissions"
            | "requireloginerror"
            | "errorcoursecontextnotvalid"
            | "setting_locked_by_permission" => Refusal::MissingCapability,
            code if ErrorClass::of(code) == ErrorClass::Transient => Refusal::Busy,
            code if function == "core_user_create_users" && !super::is_plain_code(code) => {
                Refusal::PasswordPolicy
            }
            _ => Refusal::Other,
        }
    }

    /// A stable snake_case name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidToken => "invalid_token",
            Refusal::NotInService => "not_in_service",
            Refusal::UnknownFunction => "unknown_function",
            Refusal::MissingCourse => "missing_course",
            Refusal::MissingCategory => "missing_category",
            Refusal::MissingUser => "missing_user",
            Refusal::MissingRecord => "missing_record",
            Refusal::ShortnameTaken => "shortname_taken",
            Refusal::InvalidParameter => "invalid_parameter",
            Refusal::EmailTaken => "email_taken",
            Refusal::AccountProtected => "account_protected",
            Refusal::RoleNotAssignable => "role_not_assignable",
            Refusal::NoManualEnrolment => "no_manual_enrolment",
            Refusal::MissingCapability => "missing_capability",
            Refusal::PasswordPolicy => "password_policy",
            Refusal::Busy => "busy",
            Refusal::Other => "other",
        }
    }

    /// A course, category, user or other record asked for does not exist.
    pub fn is_missing_record(self) -> bool {
        matches!(
            self,
            Refusal::MissingCourse
                | Refusal::MissingCategory
                | Refusal::MissingUser
                | Refusal::MissingRecord
        )
    }

    /// A refusal one item of a batch can cause on its own (then splitting the batch finds it);
    /// anything else (permissions, a missing course or enrolment instance) concerns every item.
    pub fn is_item_specific(self) -> bool {
        matches!(
            self,
            Refusal::InvalidParameter
                | Refusal::MissingUser
                | Refusal::PasswordPolicy
                | Refusal::EmailTaken
                | Refusal::AccountProtected
        )
    }
}

/// A missing record: the table 4.4 names, else the one kind of record `function` can miss.
fn missing(function: &str, message: &str) -> Refusal {
    let named = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find_map(|word| TABLES.iter().find(|(t, _)| *t == word).map(|(_, r)| *r));
    if let Some(r) = named {
        return r;
    }
    match function {
        // A missing template answers `invalidcourseid`: the record is the category.
        "core_course_duplicate_course" => Refusal::MissingCategory,
        // Enrolling into a missing course answers `invalidparameter`: the record is the user.
        "enrol_manual_enrol_users" => Refusal::MissingUser,
        "enrol_manual_unenrol_users" | "core_enrol_get_enrolled_users" => Refusal::MissingCourse,
        // The engine's other functions exist on every release it supports (3.11+), so what
        // is missing is a record, whichever (e.g. the category of a course to delete).
        f if crate::check::REQUIRED_FUNCTIONS.contains(&f) => Refusal::MissingRecord,
        // Any other name: most likely the function itself (`moodle check` lists the service's).
        _ => Refusal::UnknownFunction,
    }
}

/// Person-actionable advice for an exception.
pub(super) fn advice(function: &str, errorcode: &str, message: &str) -> String {
    let text = match Refusal::classify(function, errorcode, message) {
        Refusal::InvalidToken => "the token is unknown to Moodle: check MOODLE_TOKEN (tokens are invalidated when the web-service user's password changes)",
        Refusal::NotInService => return format!("the function {function} is not in the token's external service, or the token expired / the web-service user lacks webservice/rest:use (Site administration > Server > Web services > External services)"),
        Refusal::UnknownFunction => return format!("the function {function} does not exist on this Moodle: the site is too old for this engine (`moodle check` lists what the token's service offers)"),
        Refusal::MissingCourse if errorcode == "invalidcourseid" => "the course does not exist in Moodle (check the template course id)",
        Refusal::MissingCourse => "the course does not exist in Moodle: it may have been deleted there",
        Refusal::MissingCategory => "the course category does not exist in Moodle: check MOODLE_COURSE_CATEGORY_ID",
        Refusal::MissingUser => "the Moodle user does not exist (deleted in Moodle?): the participant must be matched again",
        Refusal::MissingRecord => "a Moodle record (course, category or user) does not exist: it may have been deleted in Moodle",
        Refusal::RoleNotAssignable => "allow the web-service user's role to assign the configured roles (Site administration > Users > Define roles > Allow role assignments) and check MOODLE_INSTRUCTOR_ROLE_ID / MOODLE_STUDENT_ROLE_ID",
        Refusal::NoManualEnrolment => "the course has no enabled manual enrolment: enable the manual enrolment plugin and its \"Add instance to new courses\" setting, or add it to the course",
        Refusal::MissingCapability if errorcode == "setting_locked_by_permission" => "the web-service user lacks moodle/backup:userinfo for the duplication options sent",
        Refusal::MissingCapability => "the web-service user lacks a capability (see the capabilities list in the engine's Moodle setup guide), e.g. moodle/course:view and viewhiddencourses",
        Refusal::ShortnameTaken => "a course with this short name already exists: look it up and reuse it",
        Refusal::InvalidParameter => "Moodle refused a value (bad email, username not lowercase, user or email already exists, course missing); enable site debugging to see which",
        Refusal::EmailTaken => "another Moodle account has this email (compared case-insensitively): merge the accounts in Moodle or change one of the emails",
        Refusal::AccountProtected => "the account is an administrator's or the guest account, which the web-service user may not change: link the participant to another account",
        Refusal::PasswordPolicy => "the password does not meet the site's password policy",
        Refusal::Busy if errorcode == "sitemaintenance" => "Moodle is in maintenance mode; the call will be retried",
        Refusal::Busy => "Moodle was busy; the call will be retried",
        Refusal::Other if errorcode == "codingerror" => "Moodle rejected the call as malformed",
        Refusal::Other => "see the Moodle errorcode; enable site debugging for details",
    };
    text.to_string()
}
