//! Moodle's exception bodies, exactly as a real Moodle 4.4 sent them (observed-4.4.md and the
//! lab site), and how 5.1 changes them ([`WsError::in_version`]).

use serde::Serialize;

use super::version::MoodleVersion;

/// The message of a missing record on 5.1, which no longer names the table.
pub const MISSING_RECORD_5_1: &str = "Can't find data record in database.";

/// The debug text of `enrol_user()` for a user id that does not exist.
const NO_USER: &str = "Coding error detected, it must be fixed by a programmer: User ID does not exist or is deleted!";

/// An exception answered as `{"exception","errorcode","message"}` with HTTP 200.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WsError {
    /// PHP exception class.
    pub exception: String,
    /// Moodle errorcode; empty for a PHP `Error`, whose body has no `errorcode` at all.
    #[serde(skip_serializing_if = "String::is_empty")]
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

    /// `core_user_delete_users` of an id that is no account, or a deleted one (observed on 4.4).
    pub fn invalid_user() -> Self {
        Self::new(
            "dml_missing_record_exception",
            "invaliduser",
            "Invalid user",
        )
    }

    /// `core_user_delete_users` of the token's own account, or of a site administrator
    /// (`user_delete_user()` refuses both; observed for the web-service user itself).
    pub fn user_not_deleted() -> Self {
        Self::new(
            "moodle_exception",
            "usernotdeletederror",
            "User not deleted - error",
        )
    }

    /// Enrol of a user id that does not exist (5.1: a missing record, see [`WsError::in_version`]).
    pub fn no_user() -> Self {
        Self::new("coding_exception", "codingerror", NO_USER)
    }

    /// A `coding_exception` with its (English, untranslated) debug text.
    pub fn coding(text: &str) -> Self {
        Self::new(
            "coding_exception",
            "codingerror",
            format!("Coding error detected, it must be fixed by a programmer: {text}"),
        )
    }

    /// A PHP `Error` (not a Moodle exception): the body has `exception` `Error` and no errorcode.
    pub fn php_error(message: &str) -> Self {
        Self::new("Error", "", message)
    }

    /// A failed SQL query (e.g. `ids=2,x` reaching the database as is).
    pub fn dml_read() -> Self {
        Self::new(
            "dml_read_exception",
            "dmlreadexception",
            "Error reading from database",
        )
    }

    /// A failed insert or update (e.g. a username longer than its column, observed on the lab).
    pub fn dml_write() -> Self {
        Self::new(
            "dml_write_exception",
            "dmlwriteexception",
            "Error writing to database",
        )
    }

    /// `require_capability()` failing; `what` is the capability's name as Moodle shows it.
    pub fn no_permission(what: &str) -> Self {
        Self::new(
            "required_capability_exception",
            "nopermissions",
            format!("Sorry, but you do not currently have permissions to do that ({what})."),
        )
    }

    /// The same body as `version` sends it. Bodies are built as 4.4 sends them; 5.1 (observed)
    /// namespaces `moodle_exception` and `invalid_parameter_exception`, answers every missing
    /// record with `invalidrecordunknown` without naming the table, and reports an enrolment of
    /// a user id that does not exist as such a missing record instead of a coding error.
    pub fn in_version(self, version: MoodleVersion) -> Self {
        if version == MoodleVersion::V4_4 {
            return self;
        }
        let missing = self.errorcode == "invalidrecord"
            || (self.errorcode == "codingerror" && self.message == NO_USER);
        let e = if missing {
            Self::new(
                "dml_missing_record_exception",
                "invalidrecordunknown",
                MISSING_RECORD_5_1,
            )
        } else {
            self
        };
        WsError {
            exception: version.exception_class(&e.exception),
            ..e
        }
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

    /// A backup whose file clashes with another backup of the same course still on disk
    /// (`context` is the course's context id).
    pub fn backup_file_clash(context: i64) -> Self {
        Self::new(
            "stored_file_creation_exception",
            "storedfilenotcreated",
            format!("Cannot create file {context}/backup/course/0/backup.mbz"),
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

/// The `warningcode` and message of a missing `table` row that a function caught into a
/// warning (`core_course_update_courses`), as `version` sends them.
pub fn missing_record_warning(table: &str, version: MoodleVersion) -> (&'static str, String) {
    match version {
        MoodleVersion::V4_4 => (
            "invalidrecord",
            format!("Can't find data record in database table {table}."),
        ),
        MoodleVersion::V5_1 => ("invalidrecordunknown", MISSING_RECORD_5_1.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_one_bodies() {
        let v = MoodleVersion::V5_1;
        let e = WsError::invalid_record("course").in_version(v);
        assert_eq!(
            (
                e.exception.as_str(),
                e.errorcode.as_str(),
                e.message.as_str()
            ),
            (
                "dml_missing_record_exception",
                "invalidrecordunknown",
                MISSING_RECORD_5_1
            )
        );
        assert_eq!(WsError::no_user().in_version(v), e);
        let e = WsError::invalid_token().in_version(v);
        assert_eq!(e.exception, "core\\exception\\moodle_exception");
        assert_eq!(e.errorcode, "invalidtoken");
        let e = WsError::invalid_param().in_version(v);
        assert_eq!(e.exception, "core\\exception\\invalid_parameter_exception");
        // Other coding errors and other classes stay as they are.
        let odd = WsError::coding("invalid field parameter");
        assert_eq!(odd.clone().in_version(v), odd);
        assert_eq!(WsError::access().in_version(v), WsError::access());
        for e in [WsError::no_user(), WsError::invalid_record("course")] {
            assert_eq!(e.clone().in_version(MoodleVersion::V4_4), e);
        }
    }

    #[test]
    fn php_errors_have_no_errorcode() {
        let body = serde_json::to_string(&WsError::php_error("boom")).unwrap();
        assert_eq!(body, r#"{"exception":"Error","message":"boom"}"#);
    }
}
