//! Accounts and enrolments: the requests and answers of `core_user_*`, `core_enrol_*` and
//! `enrol_manual_*` (the deserializers they share are the parent module's).

use serde::{Deserialize, Serialize};

use super::{de_opt_bool, de_opt_nonempty, de_opt_string};
use crate::secret::Secret;

/// Field for `core_user_get_users_by_field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserField {
    /// Email (exact; case-sensitive on PostgreSQL).
    Email,
    /// Username (lowercase).
    Username,
    /// User id.
    Id,
    /// idnumber (exact, as stored).
    Idnumber,
}

impl UserField {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserField::Email => "email",
            UserField::Username => "username",
            UserField::Id => "id",
            UserField::Idnumber => "idnumber",
        }
    }
}

/// A Moodle user.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct MoodleUser {
    /// User id.
    pub id: i64,
    /// Username.
    #[serde(default)]
    pub username: String,
    /// Email (absent when the caller cannot see emails).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub firstname: String,
    /// Last name.
    #[serde(default)]
    pub lastname: String,
    /// Account suspended.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub suspended: Option<bool>,
    /// Auth plugin.
    #[serde(default)]
    pub auth: Option<String>,
    /// idnumber (absent when empty or hidden from the caller).
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    pub idnumber: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct UsersEnvelope {
    #[serde(default)]
    pub users: Vec<MoodleUser>,
}

/// One account for `core_user_create_users`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    /// Lowercase username, `[-.@_a-z0-9]`.
    pub username: String,
    /// First name (non-blank, no tags).
    pub firstname: String,
    /// Last name (non-blank, no tags).
    pub lastname: String,
    /// Email.
    pub email: String,
    /// Auth plugin (`manual`, `oauth2`, `saml2`...).
    pub auth: String,
    /// Initial password (internal auth only; subject to the site's password policy).
    pub password: Option<Secret>,
    /// Let Moodle generate and email a password.
    pub createpassword: bool,
    /// idnumber (a student or staff number), when the participant has one.
    pub idnumber: Option<String>,
}

/// A created account.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct CreatedUser {
    /// New user id.
    pub id: i64,
    /// Its username.
    pub username: String,
}

/// Which enrolments `core_enrol_get_enrolled_users` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrolledFilter {
    /// Active and suspended.
    All,
    /// Active only (`onlyactive=1`).
    OnlyActive,
    /// Suspended only (`onlysuspended=1`, Moodle 3.11+).
    OnlySuspended,
}

/// A participant of a course.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct EnrolledUser {
    /// User id.
    pub id: i64,
    /// Username.
    #[serde(default)]
    pub username: String,
    /// Email.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub email: Option<String>,
    /// idnumber (absent when empty or hidden from the caller).
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    pub idnumber: Option<String>,
    /// Roles in the course.
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// A role held in a course.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Role {
    /// Role id.
    pub roleid: i64,
    /// Role short name, e.g. `student`.
    #[serde(default)]
    pub shortname: String,
}

/// One item of `enrol_manual_enrol_users` (an upsert: roles are added, `suspend=false` reactivates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolment {
    /// User id.
    pub user_id: i64,
    /// Course id.
    pub course_id: i64,
    /// Role id to add.
    pub role_id: i64,
    /// Suspend the enrolment.
    pub suspend: bool,
}

/// One item of `enrol_manual_unenrol_users` (silent when not enrolled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unenrolment {
    /// User id.
    pub user_id: i64,
    /// Course id.
    pub course_id: i64,
}
