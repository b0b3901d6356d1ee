//! The web-service functions, acting on [`SimState`] the way Moodle does (the lab's 4.4 and
//! observed-4.4.md first, the 4.4 source for the order of its checks, ws-contract.md for the
//! rest). Atomic functions validate every item before changing anything, which is what Moodle's
//! delegated transaction amounts to.
//!
//! One file per area, as Moodle groups them: [`courses`] (look-ups, updates, deletion,
//! categories), [`duplicate`] (the backup-and-restore phases of a duplication), [`users`] and
//! [`enrol`]. Bodies are built as 4.4 sends them; the server turns them into the configured
//! version's ([`super::WsError::in_version`]), so that this code holds Moodle's behaviour once.

mod courses;
pub mod duplicate;
mod enrol;
mod user_update;
mod users;

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::errors::WsError;
use super::params::Obj;
use super::state::{SimState, SITE_COURSE_ID, WS_USER_ID};
use super::version::MoodleVersion;

/// Every function the simulator implements: the engine's `REQUIRED_FUNCTIONS` (a test of the
/// client checks that each of those is here), and the two the preflight's probe may use beyond
/// them (`core_enrol_get_course_enrolment_methods`, `core_user_delete_users`), which the lab's
/// service holds.
pub const FUNCTIONS: &[&str] = &[
    "core_webservice_get_site_info",
    "core_course_get_courses_by_field",
    "core_course_search_courses",
    "core_course_duplicate_course",
    "core_course_update_courses",
    "core_course_delete_courses",
    "core_course_get_categories",
    "core_user_get_users_by_field",
    "core_user_get_users",
    "core_user_create_users",
    "core_user_update_users",
    "core_enrol_get_enrolled_users",
    "enrol_manual_enrol_users",
    "enrol_manual_unenrol_users",
    "core_role_unassign_roles",
    "core_enrol_get_course_enrolment_methods",
    "core_user_delete_users",
];

/// Functions that change the site (persisted after them).
pub fn is_mutating(function: &str) -> bool {
    matches!(
        function,
        "core_course_duplicate_course"
            | "core_course_update_courses"
            | "core_course_delete_courses"
            | "core_user_create_users"
            | "core_user_update_users"
            | "enrol_manual_enrol_users"
            | "enrol_manual_unenrol_users"
            | "core_role_unassign_roles"
            | "core_user_delete_users"
    )
}

/// Roles the web-service user may assign (observed: 3, 4, 5).
const ASSIGNABLE: &[i64] = &[3, 4, 5];

fn role_shortname(id: i64) -> &'static str {
    match id {
        1 => "manager",
        2 => "coursecreator",
        3 => "editingteacher",
        4 => "teacher",
        5 => "student",
        6 => "guest",
        7 => "user",
        _ => "",
    }
}

/// What a function may need to know besides the site's data.
pub struct Ctx<'a> {
    /// The release answered as.
    pub version: MoodleVersion,
    /// `release` of `core_webservice_get_site_info`.
    pub release: &'a str,
    /// `version` of `core_webservice_get_site_info`.
    pub version_number: &'a str,
    /// Functions of the token's service.
    pub functions: Vec<&'a str>,
    /// wwwroot.
    pub siteurl: String,
    /// `userissiteadmin` of `core_webservice_get_site_info` ([`crate::SimConfig::site_admin`]).
    pub site_admin: bool,
    /// Courses created by a duplication whose restore has not begun: they have no enrolment
    /// instance at all yet (a course whose `manual_enrol` is false otherwise has a disabled one).
    pub building: &'a BTreeSet<i64>,
}

/// Number of items in the call's main list (for the call log).
pub fn batch_size(root: Obj<'_>) -> usize {
    for k in [
        "users",
        "enrolments",
        "unassignments",
        "courses",
        "courseids",
        "values",
        "criteria",
    ] {
        if let Ok(Some(l)) = root.opt_list(k) {
            return l.len();
        }
    }
    1
}

/// Runs one function other than the duplicate (see [`duplicate`]).
pub fn dispatch(s: &mut SimState, f: &str, p: Obj<'_>, ctx: &Ctx<'_>) -> Result<Value, WsError> {
    match f {
        "core_webservice_get_site_info" => site_info(s, p, ctx),
        "core_course_get_courses_by_field" => courses::by_field(s, p),
        "core_course_search_courses" => courses::search(s, p),
        "core_course_update_courses" => courses::update(s, p, ctx),
        "core_course_delete_courses" => courses::delete(s, p),
        "core_course_get_categories" => courses::categories(s, p),
        "core_user_get_users_by_field" => users::by_field(s, p),
        "core_user_get_users" => users::get_users(s, p),
        "core_user_create_users" => users::create(s, p),
        "core_user_update_users" => user_update::update(s, p),
        "core_enrol_get_enrolled_users" => enrol::enrolled_users(s, p),
        "enrol_manual_enrol_users" => enrol::enrol(s, p),
        "enrol_manual_unenrol_users" => enrol::unenrol(s, p, ctx),
        "core_role_unassign_roles" => enrol::unassign_roles(s, p),
        "core_enrol_get_course_enrolment_methods" => enrol::enrolment_methods(s, p),
        "core_user_delete_users" => users::delete(s, p),
        _ => Err(WsError::invalid_record("external_functions")),
    }
}

fn site_info(s: &SimState, p: Obj<'_>, ctx: &Ctx<'_>) -> Result<Value, WsError> {
    p.only(&["serviceshortnames"])?;
    let ws = s.users.get(&WS_USER_ID);
    let functions: Vec<Value> = ctx
        .functions
        .iter()
        .map(|f| json!({"name": f, "version": ctx.version_number}))
        .collect();
    Ok(json!({
        "sitename": "OpenVLE Moodle Simulator",
        "username": ws.map_or("wsuser", |u| u.username.as_str()),
        "firstname": "Web service",
        "lastname": "User",
        "fullname": "Web service User",
        "lang": "en",
        "userid": WS_USER_ID,
        "siteurl": ctx.siteurl,
        "userpictureurl": "",
        "functions": functions,
        "downloadfiles": 0,
        "uploadfiles": 0,
        "release": ctx.release,
        "version": ctx.version_number,
        "mobilecssurl": "",
        "advancedfeatures": [],
        "siteid": SITE_COURSE_ID,
        "userissiteadmin": ctx.site_admin,
    }))
}

/// The `version` a release string reports when a test overrides the release.
pub fn version_number_of(release: &str) -> &'static str {
    match crate::rules::release_branch(release) {
        Some((3, 9)) => "2020061500",
        Some((3, 11)) => "2021051700",
        Some((4, 0)) => "2022041900",
        Some((4, 1)) => "2022112800",
        Some((4, 2)) => "2023042400",
        Some((4, 3)) => "2023100900",
        Some((4, 4)) => MoodleVersion::V4_4.version_number(),
        Some((4, 5)) => "2024100700",
        Some((5, 1)) => MoodleVersion::V5_1.version_number(),
        _ => "2024042200",
    }
}
