//! The Moodle settings the saga's rules need, without I/O: one struct for the planner, the
//! reconcile and the event view alike, so that they cannot disagree about what is configured.

use serde::{Deserialize, Serialize};

use domain::participant::Role;

/// Defined once, in the domain, for the client's settings parser and the saga alike.
pub use domain::settings::{
    NewUserPassword, RemovalMode, UserMatchField, UsernameCollision, UsernameSource,
};

/// The Moodle settings the planner needs (a mirror of `moodle::MoodleSettings` without I/O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaSettings {
    /// MOODLE_ENABLED: when false the saga never calls Moodle.
    pub enabled: bool,
    pub user_match_field: UserMatchField,
    /// MOODLE_COURSE_CATEGORY_ID: where event courses are created.
    pub category_id: i64,
    pub delete_course_on_event_delete: bool,
    pub instructor_role_id: i64,
    pub student_role_id: i64,
    pub removal_mode: RemovalMode,
    /// MOODLE_NEW_USER_AUTH (default `manual`).
    pub new_user_auth: String,
    /// MOODLE_USERNAME_SOURCE: where a new account's username comes from.
    #[serde(default)]
    pub username_source: UsernameSource,
    /// MOODLE_USERNAME_COLLISION: a derived username held by another account.
    #[serde(default)]
    pub username_collision: UsernameCollision,
    /// MOODLE_NEW_USER_PASSWORD: mailed by Moodle, or none (single sign-on).
    #[serde(default)]
    pub new_user_password: NewUserPassword,
    /// MOODLE_UPDATE_ACCOUNTS: a participant's changed name, email or idnumber is written to
    /// their Moodle account (off by default: the account may serve other courses and systems).
    #[serde(default)]
    pub update_accounts: bool,
}

impl SagaSettings {
    /// The integration switched off (the default).
    pub fn disabled() -> SagaSettings {
        SagaSettings {
            enabled: false,
            user_match_field: UserMatchField::Email,
            category_id: 1,
            delete_course_on_event_delete: false,
            instructor_role_id: 3,
            student_role_id: 5,
            removal_mode: RemovalMode::Unenrol,
            new_user_auth: "manual".to_string(),
            username_source: UsernameSource::Username,
            username_collision: UsernameCollision::Suffix,
            new_user_password: NewUserPassword::Email,
            update_accounts: false,
        }
    }

    /// The integration switched on with the defaults, courses created in `category_id`.
    pub fn enabled(category_id: i64) -> SagaSettings {
        SagaSettings {
            enabled: true,
            category_id,
            ..SagaSettings::disabled()
        }
    }

    /// The Moodle role id of an OpenVLE role.
    pub fn role_id(&self, role: Role) -> i64 {
        match role {
            Role::Instructor => self.instructor_role_id,
            Role::Student => self.student_role_id,
        }
    }

    /// The settings an event view depends on, stored beside the persisted views so that a
    /// process started with other ones rebuilds them.
    pub fn view_fingerprint(&self) -> ViewFingerprint {
        ViewFingerprint {
            moodle_enabled: self.enabled,
            delete_course_on_event_delete: self.delete_course_on_event_delete,
            instructor_role_id: self.instructor_role_id,
            student_role_id: self.student_role_id,
            update_accounts: self.update_accounts,
        }
    }
}

impl Default for SagaSettings {
    fn default() -> Self {
        SagaSettings::disabled()
    }
}

/// The part of [`SagaSettings`] an event view's content depends on (see
/// [`SagaSettings::view_fingerprint`]). Only compared and stored, never read as settings: its
/// JSON is the object databases already hold (`{"moodle_enabled":…,
/// "delete_course_on_event_delete":…,"instructor_role_id":…,"student_role_id":…}`), so an
/// existing database is not rebuilt for nothing. The other settings change which steps the saga
/// takes, not whether something is outstanding, so views do not depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewFingerprint {
    moodle_enabled: bool,
    delete_course_on_event_delete: bool,
    instructor_role_id: i64,
    student_role_id: i64,
    /// Only written when on, so a database kept with it off is not rebuilt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    update_accounts: bool,
}
