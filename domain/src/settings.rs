//! The two Moodle policy choices that reach recorded facts, defined once for every crate that
//! reads them: the client's settings parser, the planner and the runner.
//!
//! Parsing accepts the spellings operators type (any case, `unenroll` beside `unenrol`), because
//! a setting refused at start-up is better than one silently read as the default.

use serde::{Deserialize, Serialize};

/// Which Moodle user field identifies an OpenVLE participant (MOODLE_USER_MATCH_FIELD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserMatchField {
    /// Match on email (default).
    #[default]
    Email,
    /// Match on username.
    Username,
}

impl UserMatchField {
    /// The accepted values, for error messages.
    pub const EXPECTED: &'static str = "email or username";

    /// `email` or `username`, in any case; None for anything else.
    pub fn parse(value: &str) -> Option<UserMatchField> {
        match value.trim().to_ascii_lowercase().as_str() {
            "email" => Some(UserMatchField::Email),
            "username" => Some(UserMatchField::Username),
            _ => None,
        }
    }
}

/// What removing a participant does in Moodle (MOODLE_REMOVAL_MODE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalMode {
    /// `enrol_manual_unenrol_users` (the seed's behaviour; Moodle drops the grades, MDL-70582).
    #[default]
    Unenrol,
    /// `enrol_manual_enrol_users` with `suspend=1`: reversible, keeps the work.
    Suspend,
}

impl RemovalMode {
    /// The accepted values, for error messages.
    pub const EXPECTED: &'static str = "unenrol or suspend";

    /// `unenrol` (or `unenroll`) or `suspend`, in any case; None for anything else.
    pub fn parse(value: &str) -> Option<RemovalMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "unenrol" | "unenroll" => Some(RemovalMode::Unenrol),
            "suspend" => Some(RemovalMode::Suspend),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_operators_type() {
        assert_eq!(
            UserMatchField::parse(" Email "),
            Some(UserMatchField::Email)
        );
        assert_eq!(
            UserMatchField::parse("USERNAME"),
            Some(UserMatchField::Username)
        );
        assert_eq!(UserMatchField::parse("idnumber"), None);
        assert_eq!(RemovalMode::parse("unenroll"), Some(RemovalMode::Unenrol));
        assert_eq!(RemovalMode::parse("Suspend"), Some(RemovalMode::Suspend));
        assert_eq!(RemovalMode::parse("delete"), None);
    }

    #[test]
    fn serialised_as_recorded_before() {
        assert_eq!(
            serde_json::to_string(&UserMatchField::Username).unwrap(),
            "\"username\""
        );
        assert_eq!(
            serde_json::to_string(&RemovalMode::Suspend).unwrap(),
            "\"suspend\""
        );
    }
}
