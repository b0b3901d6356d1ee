//! `core_user_update_users` (`user/externallib.php`): every item validated first (one bad value
//! fails the whole call), then each updated in a transaction of its own, a refused item
//! becoming a warning while the others are kept (all observed on the 4.4 lab).

use serde_json::{json, Value};

use crate::errors::WsError;
use crate::params::{Obj, PVal};
use crate::rules::{strip_tags_changes, username_unchanged, validate_email};
use crate::state::SimState;

/// The keys `core_user_update_users` knows.
const UPDATE_KEYS: &[&str] = &[
    "id",
    "username",
    "auth",
    "suspended",
    "password",
    "firstname",
    "lastname",
    "email",
    "maildisplay",
    "city",
    "country",
    "timezone",
    "description",
    "userpicture",
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

/// The seeded guest and administrator accounts (see [`crate::state`]).
const GUEST_ID: i64 = 1;
const ADMIN_ID: i64 = 2;

/// One item as `validate_parameters()` let it through. Only the fields the simulator keeps are
/// applied; the other known keys are validated and then left alone.
struct Update<'a> {
    id: i64,
    firstname: Option<&'a str>,
    lastname: Option<&'a str>,
    email: Option<&'a str>,
    idnumber: Option<&'a str>,
}

fn validated(item: &PVal) -> Result<Update<'_>, WsError> {
    let o = item.obj()?;
    o.only(UPDATE_KEYS)?;
    for k in ["suspended", "mailformat", "maildisplay", "userpicture"] {
        o.opt_int(k)?;
    }
    let u = Update {
        id: o.req_int("id")?,
        firstname: o.opt_str("firstname")?,
        lastname: o.opt_str("lastname")?,
        email: o.opt_str("email")?,
        idnumber: o.opt_str("idnumber")?,
    };
    let trimmed = |v: &str| v.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B']) == v;
    let refused = [u.firstname, u.lastname]
        .into_iter()
        .flatten()
        .any(strip_tags_changes)
        || u.email.is_some_and(|e| !trimmed(e))
        || o.opt_str("username")?
            .is_some_and(|n| !username_unchanged(n));
    if refused {
        return Err(WsError::invalid_param());
    }
    Ok(u)
}

fn warning(id: i64, code: &str, message: &str) -> Value {
    json!({"item": "user", "itemid": id, "warningcode": code, "message": message})
}

/// Why Moodle refuses this item, in the order of its checks (the messages as the lab sent
/// them), or `None` when it is applied.
fn refusal(s: &SimState, u: &Update<'_>) -> Option<Value> {
    let Some(existing) = s.users.get(&u.id) else {
        return Some(warning(u.id, "invaliduserid", "Invalid user ID"));
    };
    // The web-service user is no administrator, so it may not change one.
    if u.id == ADMIN_ID {
        return Some(warning(
            u.id,
            "usernotupdatedadmin",
            "Cannot update admin accounts",
        ));
    }
    if u.id == GUEST_ID {
        return Some(warning(
            u.id,
            "usernotupdatedguest",
            "error/usernotupdatedguest",
        ));
    }
    // The email is checked only when it changes (the account's own is no clash), and compared
    // case-insensitively with every other account's.
    let email = u.email.filter(|e| *e != existing.email)?;
    if !validate_email(email) {
        return Some(warning(u.id, "useremailinvalid", "error/useremailinvalid"));
    }
    let lower = email.to_lowercase();
    let taken = s
        .users
        .values()
        .any(|o| o.id != u.id && o.email.to_lowercase() == lower);
    taken.then(|| warning(u.id, "useremailduplicate", "Duplicate address"))
}

/// `core_user_update_users`: `{"warnings": [...]}`, one warning per refused item.
pub(super) fn update(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["users"])?;
    let users: Vec<Update<'_>> = p
        .req_list("users")?
        .into_iter()
        .map(validated)
        .collect::<Result<_, _>>()?;
    let mut warnings = Vec::new();
    for u in users {
        if let Some(w) = refusal(s, &u) {
            warnings.push(w);
            continue;
        }
        if let Some(stored) = s.users.get_mut(&u.id) {
            let set = |field: &mut String, v: Option<&str>| {
                if let Some(v) = v {
                    *field = v.to_string();
                }
            };
            set(&mut stored.firstname, u.firstname);
            set(&mut stored.lastname, u.lastname);
            set(&mut stored.email, u.email);
            // Not unique: two accounts may share one (observed); "" clears it.
            set(&mut stored.idnumber, u.idnumber);
        }
    }
    Ok(json!({ "warnings": warnings }))
}
