//! The Moodle policy choices the rules read, defined once for every crate that reads them: the
//! client's settings parser, the API, the planner and the runner.
//!
//! Parsing accepts the spellings operators type (any case, `unenroll` beside `unenrol`), because
//! a setting refused at start-up is better than one silently read as the default.

use serde::{Deserialize, Serialize};

use crate::participant::Participant;

/// Which Moodle user field identifies an OpenVLE participant (MOODLE_USER_MATCH_FIELD). An
/// account is adopted only when it has, in this field, the value OpenVLE sent for the
/// participant ([`UserMatchField::key_of`]); nothing the engine derives is ever looked up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserMatchField {
    /// Match on email (default), case-insensitively.
    #[default]
    Email,
    /// Match on the participant's own username (lowercased, as Moodle keeps usernames).
    Username,
    /// Match on the participant's idnumber (a student or staff number), exactly.
    Idnumber,
}

impl UserMatchField {
    /// The accepted values, for error messages.
    pub const EXPECTED: &'static str = "email, username or idnumber";

    /// `email`, `username` or `idnumber`, in any case; None for anything else.
    pub fn parse(value: &str) -> Option<UserMatchField> {
        match value.trim().to_ascii_lowercase().as_str() {
            "email" => Some(UserMatchField::Email),
            "username" => Some(UserMatchField::Username),
            "idnumber" => Some(UserMatchField::Idnumber),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserMatchField::Email => "email",
            UserMatchField::Username => "username",
            UserMatchField::Idnumber => "idnumber",
        }
    }

    /// The value a participant is looked up by: the email as given, their own username
    /// lowercased, their idnumber as given. None when OpenVLE sent none (a participant without
    /// a username in username mode): such a participant is refused by the API and parked by
    /// the saga, never matched by a value the engine made up.
    pub fn key_of(self, p: &Participant) -> Option<String> {
        match self {
            UserMatchField::Email => Some(p.email.clone()),
            UserMatchField::Username => p.username.as_ref().map(|u| u.to_lowercase()),
            UserMatchField::Idnumber => p.idnumber.clone(),
        }
    }

    /// A value of this field as the engine compares it: emails and usernames lowercased,
    /// idnumbers as they are (Moodle compares them as stored).
    pub fn normalized(self, value: &str) -> String {
        match self {
            UserMatchField::Email | UserMatchField::Username => value.to_lowercase(),
            UserMatchField::Idnumber => value.to_string(),
        }
    }

    /// Whether two values of this field are the same person's (see [`Self::normalized`]).
    pub fn same(self, a: &str, b: &str) -> bool {
        self.normalized(a) == self.normalized(b)
    }

    /// The stable code of a participant refused for lacking this field
    /// (`username_required`, `idnumber_required`).
    pub fn required_code(self) -> &'static str {
        match self {
            UserMatchField::Email => "email_required",
            UserMatchField::Username => "username_required",
            UserMatchField::Idnumber => "idnumber_required",
        }
    }
}

/// Where a new account's username comes from (MOODLE_USERNAME_SOURCE). In username mode the
/// participant's own username is always used (it is the identity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameSource {
    /// The participant's username; the email's local part when they have none (default).
    #[default]
    Username,
    /// The whole email, lowercased.
    Email,
    /// The email's local part, lowercased.
    EmailLocalPart,
}

impl UsernameSource {
    pub const EXPECTED: &'static str = "username, email or email_local_part";

    pub fn parse(value: &str) -> Option<UsernameSource> {
        match value.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "username" => Some(UsernameSource::Username),
            "email" => Some(UsernameSource::Email),
            "email_local_part" | "local_part" => Some(UsernameSource::EmailLocalPart),
            _ => None,
        }
    }
}

/// What to do when a username derived from an email's local part is held by another account
/// (MOODLE_USERNAME_COLLISION). The holder is never adopted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsernameCollision {
    /// Append the first free number (`frank2`, `frank3`, …) (default).
    #[default]
    Suffix,
    /// Park the participant, naming the account that holds the name.
    Park,
}

impl UsernameCollision {
    pub const EXPECTED: &'static str = "suffix or park";

    pub fn parse(value: &str) -> Option<UsernameCollision> {
        match value.trim().to_ascii_lowercase().as_str() {
            "suffix" => Some(UsernameCollision::Suffix),
            "park" => Some(UsernameCollision::Park),
            _ => None,
        }
    }
}

/// The password of a new account (MOODLE_NEW_USER_PASSWORD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewUserPassword {
    /// Moodle generates one and mails it (`createpassword=1`) (default).
    #[default]
    Email,
    /// None set, none mailed: for single sign-on auth plugins (oauth2, saml2, ldap, cas,
    /// shibboleth), which Moodle does not ask for a password.
    None,
}

impl NewUserPassword {
    pub const EXPECTED: &'static str = "email or none";

    pub fn parse(value: &str) -> Option<NewUserPassword> {
        match value.trim().to_ascii_lowercase().as_str() {
            "email" => Some(NewUserPassword::Email),
            "none" => Some(NewUserPassword::None),
            _ => None,
        }
    }
}

/// Whether Moodle keeps the password of accounts of this auth plugin itself (its
/// `is_internal()`): `core_user_create_users` refuses such an account without a password or
/// `createpassword`, so `MOODLE_NEW_USER_PASSWORD=none` cannot go with them.
pub fn is_internal_auth(auth: &str) -> bool {
    matches!(auth, "manual" | "email" | "nologin" | "webservice")
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
    use crate::participant::Role;

    #[test]
    fn the_key_is_what_openvle_sent() {
        let mut p = Participant {
            id: "p".into(),
            email: "Frank@Uni.example".into(),
            username: None,
            first_name: "F".into(),
            last_name: "L".into(),
            role: Role::Student,
            idnumber: None,
        };
        assert_eq!(
            UserMatchField::Email.key_of(&p).as_deref(),
            Some("Frank@Uni.example")
        );
        // No username sent: no key, never the email's local part.
        assert_eq!(UserMatchField::Username.key_of(&p), None);
        assert_eq!(UserMatchField::Idnumber.key_of(&p), None);
        p.username = Some("Frank".into());
        p.idnumber = Some("S-01".into());
        assert_eq!(
            UserMatchField::Username.key_of(&p).as_deref(),
            Some("frank")
        );
        assert_eq!(UserMatchField::Idnumber.key_of(&p).as_deref(), Some("S-01"));
        assert!(UserMatchField::Email.same("A@x.org", "a@X.org"));
        assert!(!UserMatchField::Idnumber.same("s-01", "S-01"));
    }

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
        assert_eq!(
            UserMatchField::parse("IDNumber"),
            Some(UserMatchField::Idnumber)
        );
        assert_eq!(UserMatchField::parse("id"), None);
        assert_eq!(
            UsernameSource::parse("email-local-part"),
            Some(UsernameSource::EmailLocalPart)
        );
        assert_eq!(
            UsernameCollision::parse("Park"),
            Some(UsernameCollision::Park)
        );
        assert_eq!(NewUserPassword::parse("none"), Some(NewUserPassword::None));
        assert!(is_internal_auth("manual") && !is_internal_auth("oauth2"));
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
