//! What an operator does about each code the saga parks with: the one list `status`,
//! `GET /api/v1/status` and docs/operations.md ("Troubleshooting by error code", checked against
//! this list by a test) go by.
//!
//! Each fix names the way out that needs no database access: a change in Moodle followed by a
//! retry, a PATCH of the event or participant (which lifts the park by itself), or a command.

/// `(code, fix)`, for every code a park can carry.
pub const FIXES: &[(&str, &str)] = &[
    ("http_403", "enable web services and the REST protocol in Moodle (Site administration > Server > Web services > Overview), then retry"),
    ("invalidtoken", "MOODLE_TOKEN is not known to Moodle (tokens die when the web-service user's password changes): issue a new token, update MOODLE_TOKEN, restart, then retry"),
    ("accessexception", "run `moodle check` (GET /api/v1/moodle/check): add the missing function to the external service, or renew the expired token, or give the user webservice/rest:use; then retry"),
    ("invalidrecord", "a course or category the event needs was deleted in Moodle, or a function is missing on an old Moodle: run `moodle check`, then PATCH the event's moodle_template_course_id or restore the category, then retry"),
    ("invalidrecordunknown", "as invalidrecord (Moodle 5.1): run `moodle check`; on enrolment, the participant's account was deleted in Moodle: `reconcile --apply` links them anew"),
    ("codingerror", "the participant's recorded Moodle account was deleted in Moodle: `reconcile --apply` links them anew, then retry"),
    ("wsusercannotassign", "allow the web-service user's role to assign the configured roles (Site administration > Users > Permissions > Define roles > Allow role assignments), then retry"),
    ("wsnoinstance", "enable the manual enrolment method in the template course (and for new courses), then retry"),
    ("setting_locked_by_permission", "give the web-service user's role moodle/backup:userinfo, then retry"),
    ("nopermissions", "give the web-service user's role the capability the reason names (docs/operations.md, setup step 2), then retry"),
    ("requireloginerror", "the web-service user cannot log in or lacks a capability: check the account is active and its role (setup step 2), then retry"),
    ("errorcoursecontextnotvalid", "give the web-service user's role moodle/course:viewhiddencourses at system level, then retry"),
    ("invalidparameter", "Moodle refused a value of this participant (the reason says which): PATCH the participant with a correct one (the park lifts by itself)"),
    ("ambiguous_user", "two Moodle accounts match this participant: merge or fix them in Moodle, then retry the participant"),
    ("username_required", "MOODLE_USER_MATCH is username and the participant has none: PATCH the participant with a username (the park lifts by itself)"),
    ("idnumber_required", "MOODLE_USER_MATCH is idnumber and the participant has none: PATCH the participant with an idnumber (the park lifts by itself)"),
    ("invalid_username", "Moodle would refuse this username: PATCH the participant with another (the park lifts by itself)"),
    ("invalid_email", "Moodle would refuse this email: PATCH the participant with a correct one (the park lifts by itself)"),
    ("username_taken", "another account holds the username (named in the reason): PATCH the participant with another username, rename that account, or set MOODLE_USERNAME_COLLISION=suffix; then retry the participant"),
    ("email_taken", "another account has this email and the site allows one account per email: correct one of them, then retry the participant"),
    ("invalidcourseid", "the event's template course does not exist: PATCH the event with a correct moodle_template_course_id (the park lifts by itself), and fix the environment for later events"),
    ("course_shortname_taken", "another course holds the shortname this event's course would get (named in the reason): rename that course in Moodle, then retry; or PATCH the event's name when the template uses {event_name} (the park lifts by itself)"),
    ("course_idnumber_taken", "another course holds the idnumber this event's course would get (named in the reason): clear or change it in Moodle, then retry"),
    ("unknown_category", "the course's category or archive category does not exist or is hidden from the web-service user: create it or grant moodle/category:viewhiddencategories, then retry"),
    ("saga_invariant", "the saga's record refused an outcome (a bug or a second writer): look at `audit show --event ID`, then retry; report it if it comes back"),
];

/// What to do about a park with `code` (a general answer for a code not in [`FIXES`]).
pub fn fix_for(code: &str) -> &'static str {
    FIXES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, fix)| *fix)
        .unwrap_or(
            "look at the reason and `audit show --event ID`; fix the cause in Moodle, then retry",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_fix_and_an_unknown_one_a_general_answer() {
        let mut codes: Vec<&str> = FIXES.iter().map(|(c, _)| *c).collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code listed twice");
        assert!(fix_for("wsnoinstance").contains("manual enrolment"));
        assert!(fix_for("no_such_code").contains("audit show"));
    }

    /// docs/operations.md's troubleshooting table is this list, for people.
    #[test]
    fn the_operations_guide_lists_every_code() {
        let doc = include_str!("../../../docs/operations.md");
        let missing: Vec<&str> = FIXES
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !doc.contains(&format!("`{c}`")))
            .collect();
        assert!(missing.is_empty(), "docs/operations.md lacks {missing:?}");
    }
}
