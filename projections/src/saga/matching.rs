//! Matching the participants to link against the accounts Moodle answered with: which
//! participant is which account, which are ambiguous, which must be created.
//!
//! Pure, and the one place for the matching rules (the saga's `exec/users.rs` only calls Moodle
//! and records what this says):
//! - keys are compared case-insensitively (Moodle's batched look-up on PostgreSQL matches emails
//!   case-sensitively, yet refuses a new account whose email differs only in case);
//! - one account per key links the participant (`Matched`), several park it as ambiguous (the
//!   saga never guesses), none means create it (`Created`) unless Moodle would refuse the
//!   account, in which case one last case-insensitive email look-up ([`fallback`]) is made
//!   before the participant is parked alone.

use std::collections::HashMap;

use domain::moodle_sync::{LinkKey, LinkKind, MoodleSyncEvent};

use super::plan::{LinkUsers, UserToLink};
use super::settings::UserMatchField;
use super::username::Refusal;

/// An account in Moodle's answer, with the fields matching reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub username: String,
    /// Absent when the web-service user may not see emails.
    pub email: Option<String>,
    /// Absent when empty or not shown to the web-service user.
    pub idnumber: Option<String>,
}

/// What became of one participant to link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Exactly one account has the participant's key.
    Linked(Account),
    /// Several accounts have it (their ids, in Moodle's order): the participant is parked.
    Ambiguous(Vec<i64>),
    /// No account has it: create one.
    Create,
    /// No account has it and Moodle would refuse the one the saga would create: look once more
    /// when [`fallback`] applies, then park with the refusal.
    Refused(Refusal),
}

/// The keys of one batched look-up: each once, in a stable order.
pub fn lookup_keys(l: &LinkUsers) -> Vec<String> {
    let mut keys: Vec<String> = l.users.iter().map(|u| u.key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Matches every participant of `users` (in order) against `found`, the answer of the batched
/// look-up by `field`.
pub fn match_users(field: UserMatchField, users: &[UserToLink], found: &[Account]) -> Vec<Match> {
    let mut by_key: HashMap<String, Vec<&Account>> = HashMap::new();
    for account in found {
        let key = match field {
            UserMatchField::Email => account.email.as_deref().map(|e| field.normalized(e)),
            UserMatchField::Username => Some(field.normalized(&account.username)),
            UserMatchField::Idnumber => account.idnumber.clone(),
        };
        if let Some(key) = key {
            let list = by_key.entry(key).or_default();
            if !list.iter().any(|a| a.id == account.id) {
                list.push(account);
            }
        }
    }
    users
        .iter()
        .map(|u| {
            match by_key
                .get(&field.normalized(&u.key))
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                [one] => Match::Linked((*one).clone()),
                [] => match &u.new_username {
                    Ok(_) => Match::Create,
                    Err(refusal) => Match::Refused(refusal.clone()),
                },
                many => Match::Ambiguous(many.iter().map(|a| a.id).collect()),
            }
        })
        .collect()
}

/// Whether a participant Moodle would refuse gets the case-insensitive email look-up first.
pub fn fallback(field: UserMatchField) -> bool {
    field == UserMatchField::Email
}

/// The fact the fallback look-up's answer settles `u` with: one account links it, several park
/// it as ambiguous; None when there is none (the participant is then parked as refused).
pub fn settled_by_fallback(u: &UserToLink, found: &[Account]) -> Option<MoodleSyncEvent> {
    match found {
        [] => None,
        [one] => Some(linked(u, UserMatchField::Email, one, LinkKind::Matched)),
        many => Some(ambiguous(u, &many.iter().map(|a| a.id).collect::<Vec<_>>())),
    }
}

/// The fact of a [`Match`] that settles its participant at once (None for `Create`, and for
/// `Refused`, which waits for the fallback).
pub fn fact(u: &UserToLink, field: UserMatchField, m: &Match) -> Option<MoodleSyncEvent> {
    match m {
        Match::Linked(account) => Some(linked(u, field, account, LinkKind::Matched)),
        Match::Ambiguous(ids) => Some(ambiguous(u, ids)),
        Match::Create | Match::Refused(_) => None,
    }
}

/// `u` is tied to Moodle `account`, found (or created) by its key under `field`.
pub fn linked(
    u: &UserToLink,
    field: UserMatchField,
    account: &Account,
    how: LinkKind,
) -> MoodleSyncEvent {
    MoodleSyncEvent::UserLinked {
        participant_id: u.participant_id.clone(),
        moodle_user_id: account.id,
        username: account.username.clone(),
        how,
        caused_by: u.cause.event_id,
        key: Some(LinkKey {
            field,
            value: u.key.clone(),
        }),
        differs: match how {
            LinkKind::Matched => differs(u, field, account),
            LinkKind::Created => None,
        },
    }
}

/// How a matched account's other fields differ from the participant's, for the story: the
/// match field is the identity, the rest may legitimately differ (an old email, another number).
fn differs(u: &UserToLink, field: UserMatchField, account: &Account) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(email) = &account.email {
        if field != UserMatchField::Email && !email.eq_ignore_ascii_case(&u.email) {
            notes.push(format!("email {email} (the participant's: {})", u.email));
        }
    }
    if let (Some(theirs), Some(ours)) = (&account.idnumber, &u.idnumber) {
        if field != UserMatchField::Idnumber && theirs != ours {
            notes.push(format!("idnumber {theirs} (the participant's: {ours})"));
        }
    }
    (!notes.is_empty()).then(|| {
        format!(
            "the account differs: {}; matched by {}, which is the identity",
            notes.join(", "),
            field.as_str()
        )
    })
}

/// `u` is parked: several accounts have its key.
pub fn ambiguous(u: &UserToLink, ids: &[i64]) -> MoodleSyncEvent {
    MoodleSyncEvent::ParticipantParked {
        participant_id: u.participant_id.clone(),
        code: "ambiguous_user".to_string(),
        reason: format!(
            "{} Moodle accounts match {:?} (user ids {:?}); the saga never guesses: merge or \
             delete the duplicates in Moodle, then resume",
            ids.len(),
            u.key,
            ids
        ),
        caused_by: u.cause.event_id,
    }
}

/// `u` is parked: Moodle would refuse the account the saga would create.
pub fn refused(u: &UserToLink, refusal: &Refusal) -> MoodleSyncEvent {
    MoodleSyncEvent::ParticipantParked {
        participant_id: u.participant_id.clone(),
        code: refusal.code.clone(),
        reason: refusal.reason.clone(),
        caused_by: u.cause.event_id,
    }
}

/// `u` is parked: Moodle refused to create its account `username` (`code`, and Moodle's
/// `errorcode`, which with debugging off does not say why). `by_username` and `by_email` are the
/// accounts a look-up found holding the username and the email (case-insensitively): the reason
/// names them (`username_taken`, `email_taken`); none are adopted.
pub fn creation_refused(
    u: &UserToLink,
    username: &str,
    code: String,
    errorcode: Option<&str>,
    by_username: &[Account],
    by_email: &[Account],
) -> MoodleSyncEvent {
    let name = |a: &Account| {
        format!(
            "Moodle account {} ({}, email {})",
            a.id,
            a.username,
            a.email.as_deref().unwrap_or("not shown")
        )
    };
    let (code, why) = if let Some(a) = by_username.first() {
        (
            "username_taken".to_string(),
            format!("the username belongs to {}", name(a)),
        )
    } else if let Some(a) = by_email.first() {
        (
            "email_taken".to_string(),
            format!(
                "the email belongs to {} (the site does not allow two accounts with one \
                 email), whose {} is not this participant's {:?}",
                name(a),
                "match field",
                u.key
            ),
        )
    } else {
        (
            code,
            "the username or the email may belong to another Moodle account".to_string(),
        )
    };
    MoodleSyncEvent::ParticipantParked {
        participant_id: u.participant_id.clone(),
        code,
        reason: format!(
            "Moodle refused to create the account {username:?} <{}> ({}): {why}; it is never \
             adopted: correct the participant in OpenVLE or the account in Moodle, then resume",
            u.email,
            errorcode.unwrap_or("invalid input"),
        ),
        caused_by: u.cause.event_id,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::saga::Cause;

    fn user(id: &str, key: &str) -> UserToLink {
        UserToLink {
            idnumber: None,
            participant_id: id.into(),
            key: key.into(),
            email: key.into(),
            first_name: "F".into(),
            last_name: "L".into(),
            new_username: Ok(crate::saga::NewUsername {
                name: key.to_lowercase(),
                derived: false,
            }),
            cause: Cause {
                event_id: Uuid::from_u128(9),
                sequence: 1,
            },
        }
    }

    fn account(id: i64, username: &str, email: Option<&str>) -> Account {
        Account {
            idnumber: None,
            id,
            username: username.into(),
            email: email.map(Into::into),
        }
    }

    #[test]
    fn one_account_per_key_links_case_insensitively() {
        // Given Moodle answers with the email in another case, when matched by email,
        let users = [user("p1", "Ann@Example.org")];
        let found = [account(5, "ann", Some("ann@example.org"))];
        // then the participant is linked to that account.
        let m = match_users(UserMatchField::Email, &users, &found);
        assert_eq!(m, vec![Match::Linked(found[0].clone())]);
        assert_eq!(
            fact(&users[0], UserMatchField::Email, &m[0]),
            Some(MoodleSyncEvent::UserLinked {
                differs: None,
                key: Some(LinkKey {
                    field: UserMatchField::Email,
                    value: "Ann@Example.org".into()
                }),
                participant_id: "p1".into(),
                moodle_user_id: 5,
                username: "ann".into(),
                how: LinkKind::Matched,
                caused_by: Uuid::from_u128(9),
            })
        );
    }

    #[test]
    fn by_username_the_email_is_not_read() {
        let users = [user("p1", "bob")];
        let found = [account(7, "BOB", None), account(8, "other", Some("bob"))];
        assert_eq!(
            match_users(UserMatchField::Username, &users, &found),
            vec![Match::Linked(found[0].clone())]
        );
        // By email, an account without a visible email matches nothing.
        let users = [user("p1", "x@example.org")];
        let found = [account(7, "x", None)];
        assert_eq!(
            match_users(UserMatchField::Email, &users, &found),
            vec![Match::Create]
        );
    }

    #[test]
    fn several_accounts_are_ambiguous_and_an_account_twice_is_one() {
        let users = [user("p1", "a@x.org"), user("p2", "b@x.org")];
        let found = [
            account(1, "a1", Some("a@x.org")),
            account(2, "a2", Some("A@X.org")),
            account(3, "b", Some("b@x.org")),
            // The same account listed twice is one match.
            account(3, "b", Some("b@x.org")),
        ];
        let m = match_users(UserMatchField::Email, &users, &found);
        assert_eq!(m[0], Match::Ambiguous(vec![1, 2]));
        assert_eq!(m[1], Match::Linked(found[2].clone()));
        let parked = fact(&users[0], UserMatchField::Email, &m[0]);
        assert!(
            matches!(&parked, Some(MoodleSyncEvent::ParticipantParked { code, reason, .. })
                if code == "ambiguous_user" && reason.starts_with("2 Moodle accounts match \"a@x.org\" (user ids [1, 2])")),
            "{parked:?}"
        );
    }

    #[test]
    fn missing_accounts_are_created_unless_moodle_would_refuse_them() {
        let refusal = Refusal {
            code: "invalid_username".into(),
            reason: "too long".into(),
        };
        let mut bad = user("p2", "c@x.org");
        bad.new_username = Err(refusal.clone());
        let users = [user("p1", "n@x.org"), bad];
        let m = match_users(UserMatchField::Email, &users, &[]);
        assert_eq!(m, vec![Match::Create, Match::Refused(refusal.clone())]);
        assert_eq!(fact(&users[0], UserMatchField::Email, &m[0]), None);
        assert_eq!(fact(&users[1], UserMatchField::Email, &m[1]), None);
        assert_eq!(
            refused(&users[1], &refusal),
            MoodleSyncEvent::ParticipantParked {
                participant_id: "p2".into(),
                code: "invalid_username".into(),
                reason: "too long".into(),
                caused_by: Uuid::from_u128(9),
            }
        );
    }

    #[test]
    fn the_fallback_is_for_emails_and_never_guesses() {
        assert!(fallback(UserMatchField::Email));
        assert!(!fallback(UserMatchField::Username));
        let u = user("p1", "d@x.org");
        assert_eq!(settled_by_fallback(&u, &[]), None);
        assert!(matches!(
            settled_by_fallback(&u, &[account(4, "d", Some("D@x.org"))]),
            Some(MoodleSyncEvent::UserLinked {
                moodle_user_id: 4,
                how: LinkKind::Matched,
                ..
            })
        ));
        assert!(matches!(
            settled_by_fallback(&u, &[account(4, "d", None), account(6, "e", None)]),
            Some(MoodleSyncEvent::ParticipantParked { code, .. }) if code == "ambiguous_user"
        ));
    }

    #[test]
    fn keys_are_looked_up_once_each() {
        let l = LinkUsers {
            field: UserMatchField::Email,
            auth: "manual".into(),
            password: Default::default(),
            collision: Default::default(),
            users: vec![user("p1", "b"), user("p2", "a"), user("p3", "b")],
        };
        assert_eq!(lookup_keys(&l), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_refused_creation_names_the_account() {
        let u = user("p1", "e@x.org");
        let f = creation_refused(&u, "e@x.org", "invalidparameter".into(), None, &[], &[]);
        assert!(
            matches!(&f, MoodleSyncEvent::ParticipantParked { code, reason, .. }
                if code == "invalidparameter"
                && reason.starts_with("Moodle refused to create the account \"e@x.org\" <e@x.org> (invalid input)")),
            "{f:?}"
        );
        let holder = account(12, "frank", Some("frank.other@elsewhere.example"));
        let f = creation_refused(
            &u,
            "e",
            "invalidparameter".into(),
            None,
            &[],
            std::slice::from_ref(&holder),
        );
        assert!(
            matches!(&f, MoodleSyncEvent::ParticipantParked { code, reason, .. }
                if code == "email_taken" && reason.contains("Moodle account 12 (frank")),
            "{f:?}"
        );
        let f = creation_refused(&u, "frank", "invalidparameter".into(), None, &[holder], &[]);
        assert!(
            matches!(&f, MoodleSyncEvent::ParticipantParked { code, .. } if code == "username_taken"),
            "{f:?}"
        );
    }
}
