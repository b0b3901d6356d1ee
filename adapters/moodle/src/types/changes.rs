//! Requests that change accounts and role assignments after creation: `core_user_update_users`
//! and `core_role_unassign_roles` (kept apart from `types.rs`, which holds the look-ups and
//! creations, to keep each file readable).

/// One item of `core_user_update_users`; `None` fields are not sent, so Moodle keeps them.
///
/// Moodle updates each item in its own transaction and reports a refused item as a warning
/// while the others are kept (observed on the 4.4 lab): `invaliduserid` for an id that does not
/// exist, `useremailduplicate` for an email another account holds (compared case-insensitively;
/// the account's own email is not a clash), `useremailinvalid`. The idnumber is not unique in
/// Moodle: two accounts may share one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// User id.
    pub id: i64,
    /// New first name (non-blank, no tags: Moodle fails the whole call on a tag).
    pub firstname: Option<String>,
    /// New last name (non-blank, no tags).
    pub lastname: Option<String>,
    /// New email (checked with the client's email rule before sending).
    pub email: Option<String>,
    /// New idnumber; `Some("")` clears it (observed: the account then has none).
    pub idnumber: Option<String>,
}

impl UserUpdate {
    /// Whether the item changes nothing (such items are not sent: no call for nothing).
    pub fn is_empty(&self) -> bool {
        self.firstname.is_none()
            && self.lastname.is_none()
            && self.email.is_none()
            && self.idnumber.is_none()
    }
}

/// One item of `core_role_unassign_roles` in a course context (`contextlevel=course`).
///
/// The call is all-or-nothing (one delegated transaction). Unassigning a role the user does not
/// hold, or in a course the user is not enrolled in, or for a user id that does not exist, is a
/// silent no-op; a course that does not exist or a role the web-service user may not assign
/// fails the whole call with `invalidparameter` (all observed on the 4.4 lab). The enrolment
/// stays, possibly without any role: unenrol to end it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleUnassignment {
    /// User id.
    pub user_id: i64,
    /// Course id.
    pub course_id: i64,
    /// Role id to take away.
    pub role_id: i64,
}
