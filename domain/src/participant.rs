//! Participants: what OpenVLE sends (raw) and what the log keeps (validated).

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The most participants one event accepts; far above any real course run, low enough that a
/// single command stays a bounded amount of work.
pub const MAX_PARTICIPANTS: usize = 50_000;

/// A participant's role in the OpenVLE event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Instructor,
    Student,
}

impl Role {
    /// Parses `instructor` or `student` (exactly, lowercase, as the contract says).
    pub fn parse(raw: &str) -> Result<Role, DomainError> {
        match raw {
            "instructor" => Ok(Role::Instructor),
            "student" => Ok(Role::Student),
            other => Err(DomainError::UnknownRole(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Instructor => "instructor",
            Role::Student => "student",
        }
    }
}

/// A participant as received: strings not yet checked. The API deserialises into this, so a
/// wrong role or a bad email is refused by the rules (422 with a stable code), not by the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantInput {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub username: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
}

/// A validated participant, as the log stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
}

impl ParticipantInput {
    /// Checks every field and returns the participant the log will keep (trimmed values).
    pub fn validate(self) -> Result<Participant, DomainError> {
        let id = non_blank("participant.id", &self.id, 255)?;
        let email = self.email.trim().to_string();
        if !is_valid_email(&email) {
            return Err(DomainError::InvalidEmail(self.email));
        }
        let username = match self.username {
            None => None,
            Some(u) => Some(non_blank("participant.username", &u, 100)?),
        };
        let first_name = non_blank("participant.first_name", &self.first_name, 100)?;
        let last_name = non_blank("participant.last_name", &self.last_name, 100)?;
        let role = Role::parse(&self.role)?;
        Ok(Participant {
            id,
            email,
            username,
            first_name,
            last_name,
            role,
        })
    }
}

/// A trimmed, non-blank string of at most `max` characters, without control characters.
pub(crate) fn non_blank(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be blank"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_string())
}

/// Email syntax as Moodle accepts it, conservatively: `local@domain.tld`, no spaces, no angle
/// brackets or quotes, at most 254 characters, a domain of dot-separated labels.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return false;
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ParticipantInput {
        ParticipantInput {
            id: "p1".into(),
            email: "ada@example.org".into(),
            username: None,
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            role: "student".into(),
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "O'Neil@x.io"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@@b.co", "a@b..co", ".a@b.co", "a@-b.co",
            "<a@b.co>", "a\"@b.co",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn validate_trims_and_checks() {
        let mut p = input();
        p.first_name = "  Ada ".into();
        assert_eq!(p.validate().unwrap().first_name, "Ada");
        let mut p = input();
        p.role = "teacher".into();
        assert_eq!(p.validate().unwrap_err().code(), "unknown_role");
        let mut p = input();
        p.last_name = " ".into();
        assert_eq!(p.validate().unwrap_err().code(), "invalid_field");
        let mut p = input();
        p.email = "nope".into();
        assert_eq!(p.validate().unwrap_err().code(), "invalid_email");
        let mut p = input();
        p.id = "x".repeat(256);
        assert_eq!(p.validate().unwrap_err().code(), "invalid_field");
    }
}
