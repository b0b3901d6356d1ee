//! Moodle's exception bodies, exactly as a real Moodle 4.4 sent them (observed-4.4.md).

use serde::Serialize;

/// An exception answered as `{"exception","errorcode","message"}` with HTTP 200.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WsError {
    /// PHP exception class.
    pub exception: String,
    /// Moodle errorcode.
    pub errorcode: String,
    /// Message (English, debugging off).
    pub message: String,
}

impl WsError {
    /// Any exception body.
    pub fn new(exception: &str, errorcode: &str, message: impl Into<String>) -> Self {
        WsError {
            exception: exception.into(),
            errorcode: errorcode.into(),
            message: message.into(),
        }
    }

    /// The one body Moodle uses for every validation failure while debugging is off.
    pub fn invalid_param() -> Self {
        Self::new(
            "invalid_parameter_exception",
            "invalidparameter",
            "Invalid parameter value detected",
        )
    }

    /// A missing database row.
    pub fn invalid_record(table: &str) -> Self {
        Self::new(
            "dml_missing_record_exception",
            "invalidrecord",
            format!("Can't find data record in database table {table}."),
        )
    }

    /// Wrong or missing token.
    pub fn invalid_token() -> Self {
        Self::new(
            "moodle_exception",
            "invalidtoken",
            "Invalid token - token not found",
        )
    }

    /// Function not in the token's service.
    pub fn access() -> Self {
        Self::new(
            "webservice_access_exception",
            "accessexception",
            "Access control exception",
        )
    }

    /// Short name already used; `fullname` is the other course's.
    pub fn shortname_taken(fullname: &str) -> Self {
        Self::new(
            "moodle_exception",
            "shortnametaken",
            format!("Short name is already used for another course ({fullname})"),
        )
    }

    /// Role not assignable by the web-service user.
    pub fn cannot_assign(role: i64, user: i64, course: i64) -> Self {
        Self::new(
            "moodle_exception",
            "wsusercannotassign",
            format!("You don't have the permission to assign this role ({role}) to this user ({user}) in this course ({course})."),
        )
    }

    /// Enrol of a user id that does not exist.
    pub fn no_user() -> Self {
        Self::new(
            "coding_exception",
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: User ID does not exist or is deleted!",
        )
    }

    /// No enabled manual enrolment instance (the placeholder really stays unfilled).
    pub fn no_instance() -> Self {
        Self::new(
            "moodle_exception",
            "wsnoinstance",
            "Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {$a->courseid})",
        )
    }

    /// Duplicate of a missing course.
    pub fn invalid_course_id() -> Self {
        Self::new(
            "moodle_exception",
            "invalidcourseid",
            "You are trying to use an invalid course ID",
        )
    }

    /// Duplicate with `options users=...` without moodle/backup:userinfo.
    pub fn setting_locked() -> Self {
        Self::new(
            "base_setting_exception",
            "setting_locked_by_permission",
            "error/setting_locked_by_permission",
        )
    }

    /// Duplicate option with a bad name or value.
    pub fn invalid_ext_param(name: &str) -> Self {
        Self::new(
            "moodle_exception",
            "invalidextparam",
            format!("Invalid external api parameter: {name}"),
        )
    }

    /// Concurrency lock failure (transient).
    pub fn unable_to_lock() -> Self {
        Self::new(
            "moodle_exception",
            "ex_unabletolock",
            "Unable to acquire a lock for caching.",
        )
    }
}
