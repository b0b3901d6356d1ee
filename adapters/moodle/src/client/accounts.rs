//! Accounts: look-ups by field and by criteria, and creation (checked locally first: one bad
//! account fails Moodle's whole batch).

use super::{invalid, MoodleClient, MAX_USERS_PER_CALL};
use crate::error::MoodleError;
use crate::types::*;
use crate::wire::{self, Form};

impl MoodleClient {
    /// `core_user_get_users_by_field`, batched. Values are validated first: one bad value fails
    /// Moodle's whole call. Email matching is exact (case-sensitive on PostgreSQL): fall back to
    /// [`MoodleClient::get_users`] for misses.
    pub async fn get_users_by_field(
        &self,
        field: UserField,
        values: &[String],
    ) -> Result<Vec<MoodleUser>, MoodleError> {
        const F: &str = "core_user_get_users_by_field";
        for v in values {
            let ok = match field {
                UserField::Email => wire::is_valid_email(v),
                UserField::Username => wire::is_valid_username(v),
                UserField::Id => v.parse::<i64>().is_ok_and(|n| n > 0 && n.to_string() == *v),
                // PARAM_RAW: any non-empty value (an empty one would match every account
                // without an idnumber).
                UserField::Idnumber => !v.is_empty(),
            };
            if !ok {
                return Err(invalid(F, format!("invalid {} {v:?}", field.as_str())));
            }
        }
        let mut users = Vec::new();
        for r in self.plan(&vec![1; values.len()], usize::MAX).await {
            let mut form = Form::new();
            form.push("field", field.as_str())
                .push_scalars("values", &values[r.clone()]);
            let found: Vec<MoodleUser> = self.call_json(F, &form, r.len()).await?;
            users.extend(found);
        }
        Ok(users)
    }

    /// `core_user_get_users` (criteria AND-ed). `email`, `firstname` and `lastname` are LIKE
    /// patterns in Moodle (`%`, `_` are wildcards), so only exact case-insensitive matches are kept.
    pub async fn get_users(
        &self,
        criteria: &[(&str, &str)],
    ) -> Result<Vec<MoodleUser>, MoodleError> {
        const F: &str = "core_user_get_users";
        if criteria.is_empty() {
            return Err(invalid(F, "at least one criterion is required".into()));
        }
        let items: Vec<Vec<(&str, String)>> = criteria
            .iter()
            .map(|(k, v)| vec![("value", v.to_string()), ("key", k.to_string())])
            .collect();
        let mut form = Form::new();
        form.push_objects("criteria", &items);
        let env: UsersEnvelope = self.call_json(F, &form, criteria.len()).await?;
        Ok(env
            .users
            .into_iter()
            .filter(|u| {
                criteria.iter().all(|(k, v)| match *k {
                    "email" => u
                        .email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase() == v.to_lowercase()),
                    "firstname" => u.firstname.to_lowercase() == v.to_lowercase(),
                    "lastname" => u.lastname.to_lowercase() == v.to_lowercase(),
                    _ => true,
                })
            })
            .collect())
    }

    /// `core_user_create_users`, batched (≤100 per call), rows in input order, count verified.
    /// Each batch is all-or-nothing in Moodle; earlier batches stay created if a later one fails.
    pub async fn create_users(&self, users: &[NewUser]) -> Result<Vec<CreatedUser>, MoodleError> {
        const F: &str = "core_user_create_users";
        for u in users {
            check_new_user(u).map_err(|d| invalid(F, d))?;
        }
        let items: Vec<Vec<(&str, String)>> = users
            .iter()
            .map(|u| {
                let mut item = vec![("auth", u.auth.clone())];
                if u.createpassword {
                    item.push(("createpassword", "1".to_string()));
                }
                if let Some(p) = &u.password {
                    item.push(("password", p.expose().to_string()));
                }
                item.push(("firstname", u.firstname.clone()));
                item.push(("lastname", u.lastname.clone()));
                item.push(("email", u.email.clone()));
                item.push(("username", u.username.clone()));
                if let Some(idnumber) = &u.idnumber {
                    item.push(("idnumber", idnumber.clone()));
                }
                item
            })
            .collect();
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        let mut created = Vec::with_capacity(users.len());
        for r in self.plan(&vars, MAX_USERS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects("users", &items[r.clone()]);
            let sent = r.len();
            let rows: Vec<CreatedUser> = self
                .call(F, &form, sent, |b| {
                    let rows: Vec<CreatedUser> = wire::parse_body(F, b)?;
                    if rows.len() != sent {
                        return Err(MoodleError::CountMismatch {
                            function: F.into(),
                            sent,
                            returned: rows.len(),
                        });
                    }
                    Ok(rows)
                })
                .await?;
            created.extend(rows);
        }
        Ok(created)
    }
}

impl MoodleClient {
    /// `core_user_delete_users`, batched (≤100 per call; Moodle answers `null`). Each call is
    /// all-or-nothing: one id that is not an account (or is already deleted) fails it with a
    /// missing-record error and nothing is deleted. Not one of
    /// [`crate::REQUIRED_FUNCTIONS`]: only the preflight's probe uses it, to remove the account
    /// it made.
    pub async fn delete_users(&self, ids: &[i64]) -> Result<(), MoodleError> {
        const F: &str = "core_user_delete_users";
        if let Some(bad) = ids.iter().find(|id| **id <= 0) {
            return Err(invalid(F, format!("user id {bad} is not a Moodle id")));
        }
        for chunk in ids.chunks(MAX_USERS_PER_CALL) {
            let mut form = Form::new();
            form.push_scalars("userids", chunk);
            self.call(F, &form, chunk.len(), |b| wire::parse_null(F, b))
                .await?;
        }
        Ok(())
    }

    /// `core_user_update_users`, batched (≤100 per call); items that change nothing are not
    /// sent. Values are checked first (email rule, names without tags): one bad value fails
    /// Moodle's whole call.
    ///
    /// Moodle updates each item in its own transaction and answers a refused one with a warning
    /// while keeping the others (observed): any warning comes back as
    /// [`MoodleError::Warned`] (all of them, every batch sent), its [`MoodleError::refusal`]
    /// telling an unknown user id ([`crate::Refusal::MissingUser`]) from an email another
    /// account holds ([`crate::Refusal::EmailTaken`]). The items not warned about took effect;
    /// sending them again is harmless.
    pub async fn update_users(&self, users: &[UserUpdate]) -> Result<(), MoodleError> {
        const F: &str = "core_user_update_users";
        let users: Vec<&UserUpdate> = users.iter().filter(|u| !u.is_empty()).collect();
        for u in &users {
            check_update(u).map_err(|d| invalid(F, d))?;
        }
        let items: Vec<Vec<(&str, String)>> = users
            .iter()
            .map(|u| {
                let mut item = Vec::new();
                for (k, v) in [
                    ("firstname", &u.firstname),
                    ("lastname", &u.lastname),
                    ("email", &u.email),
                    ("idnumber", &u.idnumber),
                ] {
                    if let Some(v) = v {
                        item.push((k, v.clone()));
                    }
                }
                // The required key last (see `Form::push_objects`).
                item.push(("id", u.id.to_string()));
                item
            })
            .collect();
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        let mut warnings = Vec::new();
        for r in self.plan(&vars, MAX_USERS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects("users", &items[r.clone()]);
            // 4.4 answers `{"warnings":[]}`; `null` (older releases) is success too.
            let env: Option<WarningsEnvelope> = self.call_json(F, &form, r.len()).await?;
            warnings.extend(env.map(|e| e.warnings).unwrap_or_default());
        }
        if warnings.is_empty() {
            Ok(())
        } else {
            Err(MoodleError::Warned {
                function: F.into(),
                warnings,
            }
            .redact(&self.inner.token))
        }
    }
}

fn check_update(u: &UserUpdate) -> Result<(), String> {
    if u.id <= 0 {
        return Err(format!("user id {} is not a Moodle id", u.id));
    }
    if let Some(e) = &u.email {
        if !wire::is_valid_email(e) {
            return Err(format!("email {e:?} of user {} is not valid", u.id));
        }
    }
    for (name, v) in [("firstname", &u.firstname), ("lastname", &u.lastname)] {
        if v.as_ref()
            .is_some_and(|v| v.trim().is_empty() || wire::has_tags(v))
        {
            return Err(format!(
                "{name} of user {} must be non-blank text without tags",
                u.id
            ));
        }
    }
    Ok(())
}

fn check_new_user(u: &NewUser) -> Result<(), String> {
    if !wire::is_valid_username(&u.username) {
        return Err(format!(
            "username {:?} must be lowercase [-.@_a-z0-9]",
            u.username
        ));
    }
    if !wire::is_valid_email(&u.email) {
        return Err(format!(
            "email {:?} of {} is not valid",
            u.email, u.username
        ));
    }
    for (name, v) in [("firstname", &u.firstname), ("lastname", &u.lastname)] {
        if v.trim().is_empty() || wire::has_tags(v) {
            return Err(format!(
                "{name} of {} must be non-blank text without tags",
                u.username
            ));
        }
    }
    if u.auth.is_empty()
        || !u
            .auth
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "auth {:?} of {} is not a plugin name",
            u.auth, u.username
        ));
    }
    if domain::settings::is_internal_auth(&u.auth) && u.password.is_none() && !u.createpassword {
        return Err(format!(
            "{}: internal auth needs a password or createpassword",
            u.username
        ));
    }
    Ok(())
}
