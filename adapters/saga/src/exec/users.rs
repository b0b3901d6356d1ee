//! `LinkUsers`: one batched look-up of every participant by the match field, matched against
//! Moodle's answer by [`projections::saga::matching`], then the missing accounts created in
//! batches (a refused account isolated by [`bisect`](super::bisect) and parked alone, after one
//! last case-insensitive email look-up).

use domain::moodle_sync::{LinkKind, MoodleSyncEvent};
use moodle::{MoodleClient, MoodleError, MoodleUser, NewUser, UserField};
use projections::saga::matching::{self, Account, Match};
use projections::saga::naming::{self, Naming};
use projections::saga::{Failure, LinkUsers, UserMatchField, UserToLink};

use super::bisect::{bisect, Settled};
use super::{failure_of, judged, Outcome};
use crate::SagaConfig;

fn account(u: &MoodleUser) -> Account {
    Account {
        idnumber: u.idnumber.clone(),
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
        UserMatchField::Idnumber => UserField::Idnumber,
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
                out.facts.extend(matching::fact(u, l.field, m));
            }
        }
    }

    let named = match name_new_accounts(client, l, &to_create, &found).await {
        Ok(named) => named,
        Err(e) => return out.fail(failure_of(&e)),
    };
    let mut creatable: Vec<(&UserToLink, String)> = Vec::new();
    for (u, naming) in to_create.into_iter().zip(named) {
        match naming {
            Naming::Name(name) => creatable.push((u, name)),
            Naming::Taken { name, holder } => {
                out.facts
                    .push(naming::taken(u, l.field, &name, holder.as_ref()))
            }
        }
    }
    for chunk in creatable.chunks(cfg.user_batch.max(1)) {
        create(client, l, chunk, out).await;
        if out.failure.is_some() {
            return;
        }
    }
}

/// The username each new account gets: the planned names looked up in one batch, then the
/// numbered candidates of those taken (suffix rule), and [`naming::assign`] decides. In username
/// mode the names are the keys just looked up (`found`): no second look-up.
async fn name_new_accounts(
    client: &MoodleClient,
    l: &LinkUsers,
    users: &[&UserToLink],
    found: &[Account],
) -> Result<Vec<Naming>, MoodleError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    if l.field == UserMatchField::Username {
        return Ok(naming::assign(users, found, l.collision));
    }
    let mut taken: Vec<Account> = client
        .get_users_by_field(UserField::Username, &naming::planned_names(users))
        .await?
        .iter()
        .map(account)
        .collect();
    let candidates = naming::suffix_candidates(users, &taken, l.collision);
    if !candidates.is_empty() {
        let more = client
            .get_users_by_field(UserField::Username, &candidates)
            .await?;
        taken.extend(more.iter().map(account));
    }
    Ok(naming::assign(users, &taken, l.collision))
}

fn new_user(l: &LinkUsers, u: &UserToLink, username: &str) -> NewUser {
    NewUser {
        username: username.to_string(),
        firstname: u.first_name.clone(),
        lastname: u.last_name.clone(),
        email: u.email.clone(),
        auth: l.auth.clone(),
        // No password is ever sent: internal accounts get one generated and mailed by Moodle
        // (MOODLE_NEW_USER_PASSWORD=email); single sign-on accounts get none.
        password: None,
        createpassword: l.createpassword(),
        idnumber: u.idnumber.clone(),
    }
}

/// The accounts holding `username` and `email` (case-insensitively), named in the reason of a
/// refused creation.
async fn holders(
    client: &MoodleClient,
    username: &str,
    email: &str,
) -> Result<(Vec<Account>, Vec<Account>), MoodleError> {
    let by_username = client
        .get_users_by_field(UserField::Username, &[username.to_string()])
        .await?;
    let by_email = client.get_users(&[("email", email)]).await?;
    Ok((
        by_username.iter().map(account).collect(),
        by_email.iter().map(account).collect(),
    ))
}

/// Creates a batch; when Moodle refuses it, splits it until the refused accounts are isolated.
async fn create(
    client: &MoodleClient,
    l: &LinkUsers,
    batch: &[(&UserToLink, String)],
    out: &mut Outcome,
) {
    let done = bisect(
        batch,
        |part: &[(&UserToLink, String)]| {
            let users: Vec<NewUser> = part.iter().map(|(u, n)| new_user(l, u, n)).collect();
            // A stop after an unknown outcome is safe: the next look-up finds what was created.
            async move { judged(client.create_users(&users).await) }
        },
        |(u, name): &(&UserToLink, String), e: MoodleError| async move {
            // The commonest refusal: an account with this email in another case exists.
            if matching::fallback(l.field) {
                match settled_by_fallback(client, u).await {
                    Ok(Some(fact)) => return Ok(fact),
                    Ok(None) => {}
                    Err(look) => return Err::<MoodleSyncEvent, Failure>(failure_of(&look)),
                }
            }
            match holders(client, name, &u.email).await {
                Ok((by_username, by_email)) => Ok(matching::creation_refused(
                    u,
                    name,
                    e.code(),
                    e.errorcode(),
                    &by_username,
                    &by_email,
                )),
                Err(look) => Err(failure_of(&look)),
            }
        },
    )
    .await;
    for settled in done.settled {
        match settled {
            Settled::Accepted(part, created) => {
                for ((u, _), c) in part.iter().zip(created.iter()) {
                    let account = Account {
                        id: c.id,
                        username: c.username.clone(),
                        email: Some(u.email.clone()),
                        idnumber: u.idnumber.clone(),
                    };
                    out.facts
                        .push(matching::linked(u, l.field, &account, LinkKind::Created));
                }
            }
            Settled::Isolated(_, fact) => out.facts.push(fact),
        }
    }
    if let Some(f) = done.stopped {
        out.fail(f);
    }
}
