//! Accounts: look-ups and creation (`user/externallib.php`).
//!
//! Values are cleaned the way Moodle cleans them before it compares: a username is lowercased
//! (`PARAM_USERNAME`), an email only trimmed (`PARAM_RAW_TRIMMED`), so a look-up by an email
//! Moodle would refuse at creation is simply a miss, not an error (observed).

use serde_json::{json, Value};

use crate::errors::WsError;
use crate::params::{php_int, Obj, PVal};
use crate::rules::{
    clean_username, strip_tags_changes, username_unchanged, validate_email, USERNAME_COLUMN,
};
use crate::state::{SimState, SimUser};

/// An account as `user_get_user_details()` describes it: `idnumber` only when not empty
/// (observed: the key is absent once cleared).
pub(super) fn user_json(u: &SimUser) -> Value {
    let mut v = json!({"id": u.id, "username": u.username, "firstname": u.firstname, "lastname": u.lastname,
           "fullname": format!("{} {}", u.firstname, u.lastname), "email": u.email, "department": "",
           "institution": "", "auth": u.auth, "suspended": u.suspended, "confirmed": true,
           "lang": "en", "theme": "", "timezone": "99", "mailformat": 1, "description": "",
           "descriptionformat": 1, "profileimageurlsmall": "", "profileimageurl": ""});
    if !u.idnumber.is_empty() {
        v["idnumber"] = json!(u.idnumber);
    }
    v
}

/// Whether PHP 8's `$value != clean_param($value, PARAM_INT)` is false: a numeric string equal
/// to its integer cast (`"007"` passes, `"1.5"` and `"abc"` do not).
fn int_unchanged(v: &str) -> bool {
    v.trim()
        .parse::<f64>()
        .is_ok_and(|f| f == php_int(v) as f64)
}

/// `core_user_get_users_by_field`: an exact match (case-sensitive, like PostgreSQL) on the
/// cleaned values; a value that cleaning would change fails the whole call. An account is
/// returned only if its details show the field, so an empty idnumber matches nobody (observed).
pub(super) fn by_field(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["field", "values"])?;
    let field = p.req_str("field")?;
    let values: Vec<&str> = p
        .req_list("values")?
        .into_iter()
        .map(PVal::str)
        .collect::<Result<_, _>>()?;
    if !matches!(field, "id" | "idnumber" | "username" | "email") {
        return Err(WsError::coding("invalid field parameter"));
    }
    let unchanged = |v: &str| match field {
        "id" => int_unchanged(v),
        "username" => username_unchanged(v),
        "email" => v.trim() == v,
        _ => true,
    };
    if !values.iter().all(|v| unchanged(v)) {
        return Err(WsError::invalid_param());
    }
    let out: Vec<Value> = s
        .users
        .values()
        .filter(|u| {
            values.iter().any(|v| match field {
                "id" => php_int(v) == u.id,
                "username" => u.username == *v,
                "email" => !u.email.is_empty() && u.email == *v,
                "idnumber" => !u.idnumber.is_empty() && u.idnumber == *v,
                _ => false,
            })
        })
        .map(user_json)
        .collect();
    Ok(Value::Array(out))
}

/// SQL `LIKE` with `%` and `_`, case-insensitive.
fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => v.first() == Some(c) && go(&v[1..], rest),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

/// `core_user_get_users`: criteria AND-ed; a key sent twice fails the call, an unsupported key
/// is dropped with a warning, and with no supported key left every account is listed (observed).
pub(super) fn get_users(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["criteria"])?;
    let mut used: Vec<&str> = Vec::new();
    let mut crit: Vec<(&str, String)> = Vec::new();
    let mut warnings = Vec::new();
    for c in p.req_list("criteria")? {
        let o = c.obj()?;
        o.only(&["key", "value"])?;
        let (k, v) = (o.req_str("key")?, o.req_str("value")?);
        if used.contains(&k) {
            return Err(WsError::new(
                "moodle_exception",
                "keyalreadyset",
                "error/keyalreadyset",
            ));
        }
        used.push(k);
        let cleaned = match k {
            "id" => php_int(v).to_string(),
            "username" => clean_username(v),
            "email" => v.trim().to_string(),
            "idnumber" | "auth" | "lastname" | "firstname" => v.to_string(),
            _ => {
                warnings.push(json!({"item": k, "warningcode": "invalidfieldparameter", "message": format!("The search key '{k}' is not supported, look at the web service documentation")}));
                continue;
            }
        };
        crit.push((k, cleaned));
    }
    let users: Vec<Value> = s
        .users
        .values()
        .filter(|u| {
            crit.iter().all(|(k, v)| match *k {
                "id" => php_int(v) == u.id,
                "username" => u.username == *v,
                "auth" => u.auth == *v,
                // `=`, not LIKE: exact and case-sensitive (observed on PostgreSQL).
                "idnumber" => u.idnumber == *v,
                "email" => like(&u.email, v),
                "firstname" => like(&u.firstname, v),
                "lastname" => like(&u.lastname, v),
                _ => false,
            })
        })
        .map(user_json)
        .collect();
    Ok(json!({"users": users, "warnings": warnings}))
}

/// The auth plugins `core_user_create_users` accepts: those installed (the lab's, which are
/// 4.4's standard ones, plus the third-party `saml2` many sites add), less `mnet` and
/// `webservice`, which it removes. Whether a plugin is *enabled* is not checked: the lab
/// creates `oauth2` accounts with only `email` enabled (observed).
const AUTH_PLUGINS: &[&str] = &[
    "cas",
    "db",
    "email",
    "ldap",
    "lti",
    "manual",
    "nologin",
    "none",
    "oauth2",
    "shibboleth",
    "saml2",
];

const USER_KEYS: &[&str] = &[
    "createpassword",
    "username",
    "auth",
    "password",
    "firstname",
    "lastname",
    "email",
    "maildisplay",
    "city",
    "country",
    "timezone",
    "description",
    "firstnamephonetic",
    "lastnamephonetic",
    "middlename",
    "alternatename",
    "interests",
    "idnumber",
    "institution",
    "department",
    "phone1",
    "phone2",
    "address",
    "lang",
    "calendartype",
    "theme",
    "mailformat",
    "customfields",
    "preferences",
];

/// The default password policy: 8+ chars, a digit, a lower and an upper case letter, a symbol.
fn password_policy_error(pw: &str) -> Option<WsError> {
    let ok = pw.chars().count() >= 8
        && pw.chars().any(|c| c.is_ascii_digit())
        && pw.chars().any(|c| c.is_lowercase())
        && pw.chars().any(|c| c.is_uppercase())
        && pw.chars().any(|c| !c.is_alphanumeric());
    (!ok).then(|| {
        let text = "<div>Passwords must be at least 8 characters long.</div><div>Passwords must have at least 1 digit(s).</div><div>Passwords must have at least 1 lower case letter(s).</div><div>Passwords must have at least 1 upper case letter(s).</div><div>The password must have at least 1 special character(s) such as *, -, or #.</div>";
        WsError::new("moodle_exception", text, format!("error/{text}"))
    })
}

/// One account of a `core_user_create_users` call, as `validate_parameters()` let it through.
struct NewUser<'a> {
    username: &'a str,
    firstname: &'a str,
    lastname: &'a str,
    email: &'a str,
    auth: &'a str,
    createpassword: bool,
    password: Option<&'a str>,
    idnumber: &'a str,
}

/// `validate_parameters()` for one account: known keys, types, and the cleaning of
/// PARAM_USERNAME (username), PARAM_NOTAGS (names) and PARAM_RAW_TRIMMED (email), each refusing
/// a value it would change.
fn validated(item: &PVal) -> Result<NewUser<'_>, WsError> {
    let o = item.obj()?;
    o.only(USER_KEYS)?;
    for k in ["mailformat", "maildisplay"] {
        o.opt_int(k)?;
    }
    let u = NewUser {
        username: o.req_str("username")?,
        firstname: o.req_str("firstname")?,
        lastname: o.req_str("lastname")?,
        email: o.req_str("email")?,
        auth: o.opt_str("auth")?.unwrap_or("manual"),
        createpassword: o.opt_bool("createpassword")?.unwrap_or(false),
        password: o.opt_str("password")?,
        idnumber: o.opt_str("idnumber")?.unwrap_or(""),
    };
    let trimmed = |v: &str| v.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B']) == v;
    if !username_unchanged(u.username)
        || strip_tags_changes(u.firstname)
        || strip_tags_changes(u.lastname)
        || !trimmed(u.email)
    {
        return Err(WsError::invalid_param());
    }
    Ok(u)
}

/// `core_user_create_users`: every account validated first (`validate_parameters()`), then each
/// checked and inserted in turn inside one transaction, so the first failure (in that order)
/// is the answer and nothing is kept.
pub(super) fn create(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["users"])?;
    type NewRow<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
    let users: Vec<NewUser<'_>> = p
        .req_list("users")?
        .into_iter()
        .map(validated)
        .collect::<Result<_, _>>()?;
    let mut new: Vec<NewRow<'_>> = Vec::new();
    for u in users {
        let NewUser {
            username,
            firstname,
            lastname,
            email,
            auth,
            createpassword,
            password,
            idnumber,
        } = u;
        let blank = |v: &str| v.trim().is_empty();
        if blank(username) || blank(firstname) || blank(lastname) {
            return Err(WsError::invalid_param());
        }
        let taken_name =
            s.user_by_username(username).is_some() || new.iter().any(|(u, ..)| *u == username);
        if taken_name || !AUTH_PLUGINS.contains(&auth) {
            return Err(WsError::invalid_param());
        }
        let internal = matches!(auth, "manual" | "email");
        if internal && password.is_none() && !createpassword {
            return Err(WsError::invalid_param());
        }
        let lower = email.to_lowercase();
        let taken_email = s.users.values().any(|u| u.email.to_lowercase() == lower)
            || new.iter().any(|(_, _, _, e, ..)| e.to_lowercase() == lower);
        if !validate_email(email) || taken_email {
            return Err(WsError::invalid_param());
        }
        if let (true, Some(pw)) = (internal, password) {
            if let Some(e) = password_policy_error(pw) {
                return Err(e);
            }
        }
        if username.chars().count() > USERNAME_COLUMN {
            return Err(WsError::dml_write());
        }
        // The idnumber is stored as sent, never checked for uniqueness (observed).
        new.push((username, firstname, lastname, email, auth, idnumber));
    }
    let out: Vec<Value> = new
        .into_iter()
        .map(|(username, first, last, email, auth, idnumber)| {
            let u = s.add_user(username, email, first, last, auth);
            if let Some(stored) = s.users.get_mut(&u.id) {
                stored.idnumber = idnumber.to_string();
            }
            json!({"id": u.id, "username": u.username})
        })
        .collect();
    Ok(Value::Array(out))
}

/// `core_user_delete_users`: all-or-nothing (one transaction), every id checked before any
/// account goes. An id that is no account is `invaliduser`; the token's own account (or the
/// guest, or the site administrator) `usernotdeletederror` (observed for the former). Moodle
/// keeps a deleted account's row, renamed (username `<email>.<time>`, email a hash): look-ups
/// by username or email no longer find it, and neither does a second deletion. The simulator
/// removes the account and its enrolments instead, so a look-up by id finds nothing here where
/// Moodle still answers the renamed row (observed).
pub(super) fn delete(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["userids"])?;
    let mut ids = Vec::new();
    for item in p.req_list("userids")? {
        ids.push(crate::params::parse_int(item.str()?).ok_or_else(WsError::invalid_param)?);
    }
    for id in &ids {
        if !s.users.contains_key(id) {
            return Err(WsError::invalid_user());
        }
        if matches!(*id, 1 | 2) || *id == crate::state::WS_USER_ID {
            return Err(WsError::user_not_deleted());
        }
    }
    for id in ids {
        s.users.remove(&id);
        for course in s.enrolments.values_mut() {
            course.remove(&id);
        }
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::{int_unchanged, like};

    #[test]
    fn like_is_case_insensitive_with_wildcards() {
        assert!(like("Case.Test@Example.org", "case.test@example.org"));
        assert!(like("ab_c@x.org", "ab_c@x.org"));
        assert!(like("abXc@x.org", "ab_c@x.org"));
        assert!(like("anything", "%"));
        assert!(!like("abc", "ab"));
    }

    #[test]
    fn cleaning() {
        assert!(int_unchanged("007") && int_unchanged("12"));
        assert!(!int_unchanged("1.5") && !int_unchanged("abc") && !int_unchanged(""));
    }
}
