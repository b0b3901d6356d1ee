//! `LinkUsers`: one batched look-up of every participant by the match field, matched against
//! Moodle's answer by [`projections::saga::matching`], then the missing accounts created in
//! batches (a refused account isolated by [`bisect`](super::bisect) and parked alone, after one
//! last case-insensitive email look-up).

use domain::moodle_sync::{LinkKind, MoodleSyncEvent};
use moodle::{MoodleClient, MoodleError, MoodleUser, NewUser, UserField};
use projections::saga::matching::{self, Account, Match};
use projections::saga::{Failure, LinkUsers, UserMatchField, UserToLink};

use super::bisect::{bisect, Refused, Settled};
use super::{failure_of, item_specific, Outcome};
use crate::SagaConfig;

fn account(u: &MoodleUser) -> Account {
    Account {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
    }
}

/// The case-insensitive email look-up (`core_user_get_users`) an account Moodle would refuse
/// gets before its participant is parked: Moodle on PostgreSQL matches emails case-sensitively
/// in the batched look-up but refuses a new account whose email differs only in case. The fact
/// that settles the participant, if the look-up found any account.
async fn settled_by_fallback(
    client: &MoodleClient,
    u: &UserToLink,
) -> Result<Option<MoodleSyncEvent>, MoodleError> {
    let found = client.get_users(&[("email", u.email.as_str())]).await?;
    let found: Vec<Account> = found.iter().map(account).collect();
    Ok(matching::settled_by_fallback(u, &found))
}

pub(super) async fn link_users(
    client: &MoodleClient,
    cfg: &SagaConfig,
    l: &LinkUsers,
    out: &mut Outcome,
) {
    let field = match l.field {
        UserMatchField::Email => UserField::Email,
        UserMatchField::Username => UserField::Username,
    };
    let found = match client
        .get_users_by_field(field, &matching::lookup_keys(l))
        .await
    {
        Ok(found) => found,
        Err(e) => return out.fail(failure_of(&e)),
    };
    let found: Vec<Account> = found.iter().map(account).collect();
    let matches = matching::match_users(l.field, &l.users, &found);

    let mut to_create: Vec<&UserToLink> = Vec::new();
    for (u, m) in l.users.iter().zip(matches.iter()) {
        match m {
            Match::Create => to_create.push(u),
            // Moodle would refuse the account we would create: one last case-insensitive
            // look-up, then park this participant alone.
            Match::Refused(refusal) => {
                if matching::fallback(l.field) {
                    match settled_by_fallback(client, u).await {
                        Ok(Some(fact)) => {
                            out.facts.push(fact);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => return out.fail(failure_of(&e)),
                    }
                }
                out.facts.push(matching::refused(u, refusal));
            }
            Match::Linked { .. } | Match::Ambiguous(_) => {
                out.facts.extend(matching::fact(u, m));
            }
        }
    }

    for chunk in to_create.chunks(cfg.user_batch.max(1)) {
        create(client, l, chunk, out).await;
        if out.failure.is_some() {
            return;
        }
    }
}

fn new_user(l: &LinkUsers, u: &UserToLink) -> NewUser {
    let internal = matches!(l.auth.as_str(), "manual" | "email");
    NewUser {
        username: u.new_username.clone().unwrap_or_default(),
        firstname: u.first_name.clone(),
        lastname: u.last_name.clone(),
        email: u.email.clone(),
        auth: l.auth.clone(),
        // No password is ever sent: internal accounts get one generated and mailed by Moodle.
        password: None,
        createpassword: internal,
    }
}

/// Creates a batch; when Moodle refuses it, splits it until the refused accounts are isolated.
async fn create(client: &MoodleClient, l: &LinkUsers, batch: &[&UserToLink], out: &mut Outcome) {
    let done = bisect(
        batch,
        |part: &[&UserToLink]| {
            let users: Vec<NewUser> = part.iter().map(|u| new_user(l, u)).collect();
            async move {
                match client.create_users(&users).await {
                    Ok(created) => Ok(created),
                    Err(e) if item_specific(&e) => Err(Refused::Item(e)),
                    // Transient, unknown outcome (the next look-up finds what was created), or
                    // a refusal that concerns every account (permissions): stop here with what
                    // is established.
                    Err(e) => Err(Refused::Stop(failure_of(&e))),
                }
            }
        },
        |u: &&UserToLink, e: MoodleError| async move {
            // The commonest refusal: an account with this email in another case exists.
            if matching::fallback(l.field) {
                match settled_by_fallback(client, u).await {
                    Ok(Some(fact)) => return Ok(fact),
                    Ok(None) => {}
                    Err(look) => return Err::<MoodleSyncEvent, Failure>(failure_of(&look)),
                }
            }
            Ok(matching::creation_refused(u, e.code(), e.errorcode()))
        },
    )
    .await;
    for settled in done.settled {
        match settled {
            Settled::Accepted(part, created) => {
                for (u, c) in part.iter().zip(created.iter()) {
                    out.facts
                        .push(matching::linked(u, c.id, &c.username, LinkKind::Created));
                }
            }
            Settled::Isolated(_, fact) => out.facts.push(fact),
        }
    }
    if let Some(f) = done.stopped {
        out.fail(f);
    }
}
