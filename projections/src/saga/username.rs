//! Moodle usernames and emails, checked locally before anything is sent: Moodle refuses a whole
//! `core_user_create_users` batch (and a whole look-up by username) for one bad username or
//! email, and with debugging off its answer does not say which.

use domain::participant::{is_valid_email, Participant};
use domain::settings::{UserMatchField, UsernameSource};

/// Moodle's longest username (the `user.username` column).
pub const MAX_USERNAME_LEN: usize = 100;

/// Why a participant cannot get a Moodle account from us.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// Stable code, recorded in `ParticipantParked`.
    pub code: String,
    /// For a person.
    pub reason: String,
}

impl Refusal {
    pub fn invalid_username(username: &str, why: &str) -> Refusal {
        Refusal {
            code: "invalid_username".to_string(),
            reason: format!(
                "Moodle would refuse the username {username:?}: {why} \
                 (allowed: lowercase letters, digits and - . @ _, at most {MAX_USERNAME_LEN} characters); \
                 correct the participant's username in OpenVLE"
            ),
        }
    }

    /// The match field's value was not sent: the engine never looks up a value it made up.
    pub fn required(field: UserMatchField) -> Refusal {
        Refusal {
            code: field.required_code().to_string(),
            reason: format!(
                "MOODLE_USER_MATCH_FIELD is {field} and OpenVLE sent no {field} for this \
                 participant: the engine adopts only an account whose {field} is the one \
                 OpenVLE sent (a value derived from the email could be another person's \
                 account); send the participant's {field} (PATCH the participant), and they are \
                 linked",
                field = field.as_str()
            ),
        }
    }

    pub fn invalid_email(email: &str) -> Refusal {
        Refusal {
            code: "invalid_email".to_string(),
            reason: format!(
                "Moodle would refuse the email {email:?} (its validate_email accepts ASCII \
                 addresses only, with a domain of two or more labels); correct the participant's \
                 email in OpenVLE"
            ),
        }
    }
}

/// The username a new Moodle account would get, and whether it was derived from the email's
/// local part (then a name held by another account gets the collision rule; a name OpenVLE sent,
/// or a whole email, that another account holds parks the participant naming that account).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewUsername {
    pub name: String,
    pub derived: bool,
}

/// The username a new Moodle account for this participant gets, from `source` (in username mode
/// always the participant's own: it is the identity), lowercased (Moodle keeps usernames
/// lowercase and refuses others) and checked against Moodle's rules (`PARAM_USERNAME` without
/// `extendedusernamechars`). Nothing is silently rewritten beyond lowercasing: a character Moodle
/// does not allow parks the participant with a clear reason instead of creating a look-alike.
/// Used to create an account, never to find one.
pub fn new_username(
    participant: &Participant,
    field: UserMatchField,
    source: UsernameSource,
) -> Result<NewUsername, Refusal> {
    let local_part = || {
        participant
            .email
            .rsplit_once('@')
            .map(|(local, _)| local.to_string())
            .unwrap_or_default()
    };
    let (raw, derived) = match (field, source, &participant.username) {
        (UserMatchField::Username, _, None) => return Err(Refusal::required(field)),
        (UserMatchField::Username, _, Some(u)) | (_, UsernameSource::Username, Some(u)) => {
            (u.trim().to_string(), false)
        }
        (_, UsernameSource::Email, _) => (participant.email.clone(), false),
        (_, UsernameSource::Username | UsernameSource::EmailLocalPart, _) => (local_part(), true),
    };
    let name = raw.to_lowercase();
    check_username(&name).map(|()| NewUsername { name, derived })
}

/// Checks a (lowercase) username against Moodle's rules.
pub fn check_username(username: &str) -> Result<(), Refusal> {
    if username.is_empty() {
        return Err(Refusal::invalid_username(username, "it is empty"));
    }
    if username.chars().count() > MAX_USERNAME_LEN {
        return Err(Refusal::invalid_username(username, "it is too long"));
    }
    if let Some(bad) = username
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-.@_".contains(*c)))
    {
        return Err(Refusal::invalid_username(
            username,
            &format!("it contains {bad:?}"),
        ));
    }
    Ok(())
}

/// Checks an email against Moodle's rule (the domain's, which the API applies too: only a
/// participant recorded before that rule can fail here, and it is parked alone).
pub fn check_email(email: &str) -> Result<(), Refusal> {
    if is_valid_email(email) {
        Ok(())
    } else {
        Err(Refusal::invalid_email(email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::participant::Role;

    fn moodle_username(p: &Participant) -> Result<String, Refusal> {
        new_username(p, UserMatchField::Email, UsernameSource::Username).map(|n| n.name)
    }

    #[test]
    fn each_source_and_the_identity_of_username_mode() {
        let with = p("Frank.M@Uni.example", Some("fm01"));
        let without = p("Frank.M@Uni.example", None);
        let n = |p: &Participant, f, s| new_username(p, f, s);
        use UserMatchField as F;
        use UsernameSource as S;
        assert_eq!(
            n(&with, F::Email, S::Email).unwrap(),
            NewUsername {
                name: "frank.m@uni.example".into(),
                derived: false
            }
        );
        assert_eq!(
            n(&with, F::Idnumber, S::EmailLocalPart).unwrap(),
            NewUsername {
                name: "frank.m".into(),
                derived: true
            }
        );
        assert_eq!(
            n(&without, F::Email, S::Username).unwrap(),
            NewUsername {
                name: "frank.m".into(),
                derived: true
            }
        );
        // In username mode the participant's username is the identity, whatever the source.
        assert_eq!(
            n(&with, F::Username, S::Email).unwrap(),
            NewUsername {
                name: "fm01".into(),
                derived: false
            }
        );
        assert_eq!(
            n(&without, F::Username, S::EmailLocalPart)
                .unwrap_err()
                .code,
            "username_required"
        );
    }

    fn p(email: &str, username: Option<&str>) -> Participant {
        Participant {
            idnumber: None,
            id: "p".into(),
            email: email.into(),
            username: username.map(str::to_string),
            first_name: "A".into(),
            last_name: "B".into(),
            role: Role::Student,
        }
    }

    #[test]
    fn derived_from_username_or_email() {
        assert_eq!(
            moodle_username(&p("x@y.org", Some("Ada.L"))).unwrap(),
            "ada.l"
        );
        assert_eq!(
            moodle_username(&p("Grace.Hopper@Navy.mil", None)).unwrap(),
            "grace.hopper"
        );
        assert_eq!(moodle_username(&p("a_b-c@y.org", None)).unwrap(), "a_b-c");
        assert_eq!(
            moodle_username(&p("x@y.org", Some("me@home.net"))).unwrap(),
            "me@home.net"
        );
    }

    #[test]
    fn refused_locally() {
        for (email, username) in [
            ("o'neil@y.org", None),
            ("tag+x@y.org", None),
            ("x@y.org", Some("has space")),
            ("x@y.org", Some("jürgen")),
        ] {
            let err = moodle_username(&p(email, username)).unwrap_err();
            assert_eq!(err.code, "invalid_username", "{email} {username:?}");
        }
        assert!(check_username(&"a".repeat(101)).is_err());
        assert!(check_username(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn emails_moodle_refuses() {
        assert_eq!(check_email("ada@uni.example"), Ok(()));
        for bad in ["jöran@uni.example", "a@localhost", "a@bücher.example"] {
            let err = check_email(bad).unwrap_err();
            assert_eq!(err.code, "invalid_email", "{bad}");
            assert!(err.reason.contains(bad), "{}", err.reason);
        }
    }
}
