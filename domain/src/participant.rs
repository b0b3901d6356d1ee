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
    /// A student or staff number (Moodle's `idnumber`), what `MOODLE_USER_MATCH_FIELD=idnumber`
    /// matches on.
    #[serde(default)]
    pub idnumber: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idnumber: Option<String>,
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
        let idnumber = match self.idnumber {
            None => None,
            Some(n) => Some(non_blank("participant.idnumber", &n, MAX_IDNUMBER_LEN)?),
        };
        Ok(Participant {
            id,
            email,
            username,
            first_name,
            last_name,
            role,
            idnumber,
        })
    }
}

/// Moodle's longest `user.idnumber`.
pub const MAX_IDNUMBER_LEN: usize = 255;

/// A JSON merge patch (RFC 7396) of a participant: an absent field is kept, a present one
/// replaces it, `null` clears the optional `username` and `idnumber`. The id never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub idnumber: Option<Option<String>>,
}

/// A field that is present (`Some`), as `null` (`Some(None)`) or a value; absent stays `None`
/// through `#[serde(default)]`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl ParticipantPatch {
    /// The participant this patch makes of `current`, checked by the same rules as a new one.
    pub fn apply(self, current: &Participant) -> Result<Participant, DomainError> {
        ParticipantInput {
            id: current.id.clone(),
            email: self.email.unwrap_or_else(|| current.email.clone()),
            username: self.username.unwrap_or_else(|| current.username.clone()),
            first_name: self
                .first_name
                .unwrap_or_else(|| current.first_name.clone()),
            last_name: self.last_name.unwrap_or_else(|| current.last_name.clone()),
            role: self
                .role
                .unwrap_or_else(|| current.role.as_str().to_string()),
            idnumber: self.idnumber.unwrap_or_else(|| current.idnumber.clone()),
        }
        .validate()
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

/// Whether Moodle accepts `email` for a new account: the one email rule of the engine (the API
/// refuses a participant it fails, the saga parks one recorded before the rule, the client checks
/// a batch with it). A participant Moodle would refuse must never reach a batch: Moodle refuses
/// the whole `core_user_create_users` call for one bad email, without saying which.
///
/// Moodle's `validate_email()` (`lib/moodlelib.php`) is PHPMailer's `validateAddress()`, which
/// refuses line breaks and then asks PHP's `filter_var(FILTER_VALIDATE_EMAIL)` without the
/// Unicode flag, and it refuses `<` and `>`. So, as the lab site answered (and the contract suite
/// pins): ASCII only (`jöran@uni.example` is refused); a local part of at most 64 characters made
/// of dot-separated atoms or quoted strings; a domain that is a bracketed IP literal or two or
/// more hostname labels (letters, digits, inner hyphens, at most 63 characters) whose last one
/// begins with a letter (`a@localhost` and `a@x.123` are refused); 254 characters in all.
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || !email.is_ascii() || email.contains(['\n', '\r', '<', '>']) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    // Lengths as PHP's pattern counts them: quotes not at all, an escaped pair once.
    let length = |s: &str| {
        let (mut n, mut escaped) = (0, false);
        for c in s.chars() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => (n, escaped) = (n + 1, true),
                (false, '"') => {}
                _ => n += 1,
            }
        }
        n
    };
    local_part_ok(local)
        && length(local) <= 64
        && length(email) <= 254
        && (domain_literal_ok(domain) || host_ok(domain))
}

/// Dot-separated atoms (`[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+`) and quoted strings (printable ASCII
/// but space, `"` and `\\` unless escaped by a backslash).
fn local_part_ok(local: &str) -> bool {
    const ATOM: &str = "!#$%&'*+-/=?^_`{|}~";
    let mut chars = local.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        if chars.next().is_none() {
                            return false;
                        }
                    }
                    Some(c) if c != ' ' && c != '\t' && c != '\0' => {}
                    _ => return false,
                }
            }
        } else {
            let mut atom = 0;
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || ATOM.contains(*c))
            {
                chars.next();
                atom += 1;
            }
            if atom == 0 {
                return false;
            }
        }
        match chars.next() {
            None => return true,
            Some('.') => {}
            Some(_) => return false,
        }
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn domain_literal_ok(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Two or more labels; the last begins with a letter.
fn host_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()))
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
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
            idnumber: None,
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
        // Moodle's validate_email, as the lab site answered (the contract suite pins the same).
        for ok in [
            "\"a.b\"@x.org",
            "a@[127.0.0.1]",
            "a@xn--bcher-kva.example",
            "a@x.c0m",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "jöran@uni.example",
            "a@bücher.example",
            "a@localhost",
            "a@x.123",
            "a@x.ab-",
            "\"a b\"@x.org",
            "a.@x.org",
            "a@[127.0.0.01]",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(is_valid_email(&format!("{}@x.org", "a".repeat(64))));
        assert!(!is_valid_email(&format!("{}@x.org", "a".repeat(65))));
        assert!(!is_valid_email(&format!("a@{}.org", "b".repeat(64))));
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
        let mut p = input();
        p.idnumber = Some(" S-1234 ".into());
        assert_eq!(p.validate().unwrap().idnumber.as_deref(), Some("S-1234"));
        let mut p = input();
        p.idnumber = Some("  ".into());
        assert_eq!(p.validate().unwrap_err().code(), "invalid_field");
    }

    #[test]
    fn a_merge_patch_keeps_replaces_and_clears() {
        let mut i = input();
        i.username = Some("ada".into());
        i.idnumber = Some("S1".into());
        let current = i.validate().unwrap();
        let patch: ParticipantPatch =
            serde_json::from_str(r#"{"role":"instructor","username":null,"email":"a@x.org"}"#)
                .unwrap();
        let after = patch.apply(&current).unwrap();
        assert_eq!(after.role, Role::Instructor);
        assert_eq!(after.username, None);
        assert_eq!(after.email, "a@x.org");
        assert_eq!(after.idnumber.as_deref(), Some("S1"));
        assert_eq!(after.first_name, "Ada");
        let bad: ParticipantPatch = serde_json::from_str(r#"{"email":"nope"}"#).unwrap();
        assert_eq!(bad.apply(&current).unwrap_err().code(), "invalid_email");
        assert!(serde_json::from_str::<ParticipantPatch>(r#"{"id":"p9"}"#).is_err());
    }
}
