//! The username a new account gets when the planned one is taken. The account holding a name is
//! never adopted: it did not match the participant on the configured field (the look-up by that
//! field found nothing), so it is another person's.
//!
//! A name derived from an email's local part gets the collision rule (`MOODLE_USERNAME_COLLISION`):
//! the first free number appended (`frank2`, …), or the participant parked naming the holder. A
//! name OpenVLE sent, or a whole email, is never altered: taken, it parks the participant.

use std::collections::{HashMap, HashSet};

use domain::moodle_sync::MoodleSyncEvent;

use super::matching::Account;
use super::plan::UserToLink;
use super::settings::{UserMatchField, UsernameCollision};
use super::username::MAX_USERNAME_LEN;

/// The highest number appended to a derived username.
pub const MAX_SUFFIX: u32 = 50;

/// The username one participant's account gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// Create the account with this username.
    Name(String),
    /// The name is held: by this account, or (None) by another participant of the same batch.
    Taken {
        name: String,
        holder: Option<Account>,
    },
}

/// The planned username of `u` (only participants whose account Moodle would accept get here).
fn planned(u: &UserToLink) -> Option<(&str, bool)> {
    u.new_username
        .as_ref()
        .ok()
        .map(|n| (n.name.as_str(), n.derived))
}

/// `base` with the number `n` appended, shortened to fit Moodle's longest username.
pub fn suffixed(base: &str, n: u32) -> String {
    let number = n.to_string();
    let keep = MAX_USERNAME_LEN.saturating_sub(number.len());
    let stem: String = base.chars().take(keep).collect();
    format!("{stem}{number}")
}

/// The planned names, each once: the first look-up.
pub fn planned_names(users: &[&UserToLink]) -> Vec<String> {
    let mut names: Vec<String> = users
        .iter()
        .filter_map(|u| planned(u).map(|(n, _)| n.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn by_name(taken: &[Account]) -> HashMap<String, &Account> {
    taken
        .iter()
        .map(|a| (UserMatchField::Username.normalized(&a.username), a))
        .collect()
}

/// The numbered names to look up next: for each derived name held by an account or planned twice
/// in the batch, under the suffix rule.
pub fn suffix_candidates(
    users: &[&UserToLink],
    taken: &[Account],
    rule: UsernameCollision,
) -> Vec<String> {
    if rule != UsernameCollision::Suffix {
        return Vec::new();
    }
    let held = by_name(taken);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for u in users {
        let Some((name, derived)) = planned(u) else {
            continue;
        };
        let clash = held.contains_key(name) || !seen.insert(name.to_string());
        if derived && clash {
            out.extend((2..=MAX_SUFFIX).map(|n| suffixed(name, n)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The username each participant's account gets (in order), given every account found holding
/// one of the names looked up.
pub fn assign(users: &[&UserToLink], taken: &[Account], rule: UsernameCollision) -> Vec<Naming> {
    let held = by_name(taken);
    let mut used: HashSet<String> = HashSet::new();
    let free =
        |name: &str, used: &HashSet<String>| !held.contains_key(name) && !used.contains(name);
    users
        .iter()
        .map(|u| {
            let Some((name, derived)) = planned(u) else {
                return Naming::Taken {
                    name: String::new(),
                    holder: None,
                };
            };
            let pick = if free(name, &used) {
                Some(name.to_string())
            } else if derived && rule == UsernameCollision::Suffix {
                (2..=MAX_SUFFIX)
                    .map(|n| suffixed(name, n))
                    .find(|c| free(c, &used))
            } else {
                None
            };
            match pick {
                Some(chosen) => {
                    used.insert(chosen.clone());
                    Naming::Name(chosen)
                }
                None => Naming::Taken {
                    name: name.to_string(),
                    holder: held.get(name).map(|a| (*a).clone()),
                },
            }
        })
        .collect()
}

/// `u` is parked: the username its account would get is held.
pub fn taken(
    u: &UserToLink,
    field: UserMatchField,
    name: &str,
    holder: Option<&Account>,
) -> MoodleSyncEvent {
    let by = match holder {
        Some(a) => format!(
            "Moodle account {} ({}, email {})",
            a.id,
            a.username,
            a.email.as_deref().unwrap_or("not shown")
        ),
        None => "another participant of the same batch".to_string(),
    };
    MoodleSyncEvent::ParticipantParked {
        participant_id: u.participant_id.clone(),
        code: "username_taken".to_string(),
        reason: format!(
            "the username {name:?} a new account would get belongs to {by}, whose {field} is \
             not this participant's {key:?}: it is never adopted. Give the participant another \
             username in OpenVLE, rename the account in Moodle, or (for a name made from the \
             email) set MOODLE_USERNAME_COLLISION=suffix, then resume",
            field = field.as_str(),
            key = u.key,
        ),
        caused_by: u.cause.event_id,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::saga::{Cause, NewUsername};

    fn user(id: &str, name: &str, derived: bool) -> UserToLink {
        UserToLink {
            participant_id: id.into(),
            key: format!("{id}@uni.example"),
            email: format!("{id}@uni.example"),
            first_name: "F".into(),
            last_name: "L".into(),
            idnumber: None,
            new_username: Ok(NewUsername {
                name: name.into(),
                derived,
            }),
            cause: Cause {
                event_id: Uuid::from_u128(3),
                sequence: 1,
            },
        }
    }

    fn holder(id: i64, name: &str) -> Account {
        Account {
            id,
            username: name.into(),
            email: Some("frank.other@elsewhere.example".into()),
            idnumber: None,
        }
    }

    #[test]
    fn a_derived_name_that_is_taken_gets_the_first_free_number() {
        let a = user("p1", "frank", true);
        let b = user("p2", "frank", true);
        let users = [&a, &b];
        let taken = [holder(9, "frank"), holder(10, "frank2")];
        let candidates = suffix_candidates(&users, &taken[..1], UsernameCollision::Suffix);
        assert!(candidates.contains(&"frank2".to_string()));
        assert_eq!(
            assign(&users, &taken, UsernameCollision::Suffix),
            [Naming::Name("frank3".into()), Naming::Name("frank4".into())]
        );
    }

    #[test]
    fn under_park_or_for_a_name_openvle_sent_the_holder_is_named() {
        let derived = user("p1", "frank", true);
        let sent = user("p2", "frank", false);
        let taken = [holder(9, "frank")];
        for (u, rule) in [
            (&derived, UsernameCollision::Park),
            (&sent, UsernameCollision::Suffix),
        ] {
            let got = assign(&[u], &taken, rule);
            assert_eq!(
                got,
                [Naming::Taken {
                    name: "frank".into(),
                    holder: Some(taken[0].clone())
                }]
            );
            let fact = taken_fact(u);
            assert!(
                matches!(&fact, MoodleSyncEvent::ParticipantParked { code, reason, .. }
                    if code == "username_taken" && reason.contains("Moodle account 9 (frank")),
                "{fact:?}"
            );
        }
        assert!(suffix_candidates(&[&sent], &taken, UsernameCollision::Suffix).is_empty());
    }

    fn taken_fact(u: &UserToLink) -> MoodleSyncEvent {
        taken(u, UserMatchField::Email, "frank", Some(&holder(9, "frank")))
    }

    #[test]
    fn a_number_never_makes_a_name_too_long() {
        let long = "a".repeat(MAX_USERNAME_LEN);
        assert_eq!(suffixed(&long, 12).chars().count(), MAX_USERNAME_LEN);
        assert!(suffixed(&long, 12).ends_with("12"));
    }
}
