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
        .map(|a| (a.username.to_lowercase(), a))
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
