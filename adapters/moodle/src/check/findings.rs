//! The quick check's findings, one function each, every one with what to change in Moodle.

use crate::client::MoodleClient;
use crate::config::MoodleSettings;
use crate::error::{MoodleError, Refusal};
use crate::targets::Target;
use crate::types::{CourseField, RoleUnassignment, SiteInfo};

use super::{CheckReport, Finding};

/// Where the web-service functions of a service are added.
pub(crate) const SERVICE_FUNCTIONS_PATH: &str =
    "Site administration > Server > Web services > External services > (the token's service) > Functions > Add functions";

/// Where a role's id and allowed assignments are.
const ROLES_PATH: &str = "Site administration > Users > Permissions > Define roles";

/// The lines a call that did not reach a valid token gives: `url`, `web_services` or `token`.
pub(super) fn unreachable(client: &MoodleClient, e: &MoodleError) -> Finding {
    match e {
        MoodleError::Transport { detail, .. } => Finding::problem(
            "url",
            format!("Moodle is not reachable at {} ({detail})", client.endpoint()),
            "check MOODLE_URL (the site's wwwroot), DNS, TLS and firewalls between this server and Moodle",
        ),
        MoodleError::BadResponse { .. } => Finding::problem(
            "url",
            format!(
                "{} did not answer like Moodle's REST server ({e})",
                client.endpoint()
            ),
            "check MOODLE_URL is the site's wwwroot, the address its front page has in a browser",
        ),
        MoodleError::Http { status: 403, .. } => Finding::problem(
            "web_services",
            format!("Moodle refused the REST endpoint (HTTP 403): {e}"),
            "enable web services (Site administration > Advanced features > Enable web services) and the REST protocol (Site administration > Server > Web services > Manage protocols)",
        ),
        MoodleError::Http { .. } => Finding::problem(
            "url",
            e.to_string(),
            "check MOODLE_URL is the site's wwwroot and that no proxy in front of Moodle answers instead",
        ),
        _ if e.refusal() == Some(Refusal::InvalidToken) => Finding::problem(
            "token",
            e.to_string(),
            "create a token for the web-service user (Site administration > Server > Web services > Manage tokens) and set MOODLE_TOKEN to it",
        ),
        _ if e.refusal() == Some(Refusal::NotInService) => Finding::problem(
            "token",
            e.to_string(),
            format!("add core_webservice_get_site_info to the token's service ({SERVICE_FUNCTIONS_PATH}); check the token has not expired (Manage tokens) and the user holds webservice/rest:use"),
        ),
        _ => Finding::problem(
            "token",
            e.to_string(),
            "check MOODLE_TOKEN and the web-service user (Site administration > Server > Web services > Manage tokens)",
        ),
    }
}

/// The release: supported (4.4, 5.1), expected to work (4.0–4.3, 4.5, 5.0), not supported but
/// usable (3.11–3.x: a warning), too old (< 3.11: the `onlysuspended` filter is missing, a
/// problem), newer than any tested (a warning), or unknown (a warning).
pub(super) fn site_version(release: Option<&str>, version: Option<&str>) -> Finding {
    const NAME: &str = "site_version";
    let Some(rel) = release else {
        return Finding::warning(
            NAME,
            "Moodle did not report its release (a web-service user's site information always carries it), so batches are sized for max_input_vars=1000",
            "set MOODLE_MAX_INPUT_VARS to the site's max_input_vars, and check the token belongs to a web-service user",
        );
    };
    let shown = format!("Moodle {rel} (version {})", version.unwrap_or("?"));
    let upgrade = "upgrade Moodle to 4.4 or 5.1 (docs/operations.md, Supported Moodle versions)";
    match crate::wire::parse_release(rel) {
        None => Finding::warning(
            NAME,
            format!("{shown}: the release does not parse, so it cannot be told whether it is supported"),
            upgrade,
        ),
        Some(v) if v < (3, 11) => Finding::problem(
            NAME,
            format!("{shown} is too old: 3.11 or later is required (the onlysuspended filter of core_enrol_get_enrolled_users)"),
            upgrade,
        ),
        Some(v) if v < (4, 0) => Finding::warning(
            NAME,
            format!("{shown} is not supported: it has the functions the engine calls, but nothing else was checked"),
            upgrade,
        ),
        Some((4, 4)) | Some((5, 1)) => Finding::ok(NAME, format!("{shown}: supported")),
        Some(v) if v <= (5, 1) => Finding::ok(
            NAME,
            format!("{shown}: expected to work (the same functions and answers as 4.4 and 5.1), not tested"),
        ),
        Some(_) => Finding::warning(
            NAME,
            format!("{shown} is newer than any release tested (5.1): the engine classifies errors by code, so it probably works; run moodle check --probe"),
            "run moodle check --probe before the first event, and report what differs",
        ),
    }
}

/// Every required function in the token's service.
pub(super) fn functions(missing: &[String]) -> Finding {
    if missing.is_empty() {
        return Finding::ok(
            "functions",
            format!(
                "the token's service holds every function the engine calls ({})",
                super::REQUIRED_FUNCTIONS.len()
            ),
        );
    }
    Finding::problem(
        "functions",
        format!(
            "{} of the {} functions the engine calls are not in the token's external service: {}",
            missing.len(),
            super::REQUIRED_FUNCTIONS.len(),
            missing.join(", ")
        ),
        format!("add them ({SERVICE_FUNCTIONS_PATH})"),
    )
}

/// The token's user should not be a site admin: a warning.
pub(super) fn token_user(info: &SiteInfo) -> Finding {
    match info.userissiteadmin {
        Some(true) => Finding::warning(
            "token_user",
            format!(
                "the token belongs to {:?} (user id {}), a site administrator: Moodle skips every capability and role-assignment check for it, so this check and the probe cannot see what a dedicated user would lack, and the token can do anything on the site",
                info.username, info.userid
            ),
            "use a dedicated web-service user that is not a site admin (docs/operations.md, Setting Moodle up, step 2): create it (Site administration > Users > Accounts > Add a new user), give it the web-service role, create its token (Site administration > Server > Web services > Manage tokens) and set MOODLE_TOKEN to it",
        ),
        Some(false) => Finding::ok(
            "token_user",
            format!("{:?} is not a site administrator", info.username),
        ),
        None => Finding::skipped(
            "token_user",
            "Moodle did not say whether the token's user is a site administrator (userissiteadmin)",
            "check the user is not in Site administration > Users > Permissions > Site administrators",
        ),
    }
}

/// The distinct items of `targets` matching `pick`, each with every label pointing at it.
fn distinct(targets: &[(String, Target)], pick: impl Fn(Target) -> bool) -> Vec<(Target, String)> {
    let mut out: Vec<(Target, Vec<&str>)> = Vec::new();
    for (label, t) in targets.iter().filter(|(_, t)| pick(*t)) {
        match out.iter_mut().find(|(known, _)| known == t) {
            Some((_, labels)) => {
                if !labels.contains(&label.as_str()) {
                    labels.push(label)
                }
            }
            None => out.push((*t, vec![label])),
        }
    }
    out.into_iter().map(|(t, l)| (t, l.join(", "))).collect()
}

/// Every category the settings and environments point at exists.
pub(super) async fn categories(
    client: &MoodleClient,
    targets: &[(String, Target)],
    r: &mut CheckReport,
) {
    for (t, labels) in distinct(targets, |t| matches!(t, Target::Category(_))) {
        let id = t.id();
        let finding = match client.get_categories(&[("id", &id.to_string())]).await {
            Ok(found) if found.iter().any(|c| c.id == id) => {
                Finding::ok("category", format!("{labels}: category {id} exists"))
            }
            Ok(_) => Finding::problem(
                "category",
                format!("{labels}: Moodle has no course category {id}, or the token's user cannot see it ({})", t.missing_code()),
                "check the id in Site administration > Courses > Manage courses and categories (a hidden category needs moodle/category:viewhiddencategories), or create the category",
            ),
            Err(e) => Finding::skipped(
                "category",
                format!("{labels}: could not look category {id} up: {e}"),
                "run the check again; if it persists, see the error",
            ),
        };
        r.add(finding);
    }
}

/// Every linked template course exists and has an enabled manual enrolment method.
///
/// Whether a course takes manual enrolments is in its `enrollmentmethods` (the types of its
/// enabled instances whose plugin is enabled, the test `enrol_manual_enrol_users` applies).
/// `core_enrol_get_course_enrolment_methods` cannot tell: it lists only instances whose plugin
/// describes itself, which Moodle 4.4's manual plugin does not (it answered `[]` on the lab for
/// a template with an enabled manual instance).
///
/// A template without one is a warning, not a problem: a duplication does not copy the
/// template's enrolment methods but gives the copy the site's defaults (on the 4.4 lab a
/// duplicate of a template whose manual instance was disabled, or deleted, had an enabled one).
/// What stops enrolments is the manual plugin disabled, or its "Add instance to new courses"
/// off, on the site: the probe finds that for real.
pub(super) async fn templates(
    client: &MoodleClient,
    targets: &[(String, Target)],
    r: &mut CheckReport,
) {
    for (t, labels) in distinct(targets, |t| matches!(t, Target::TemplateCourse(_))) {
        let id = t.id();
        let course = match client
            .get_courses_by_field(CourseField::Id, &id.to_string())
            .await
        {
            Ok(found) => found.into_iter().find(|c| c.id == id),
            Err(e) => {
                r.add(Finding::skipped(
                    "template_course",
                    format!("{labels}: could not look course {id} up: {e}"),
                    "run the check again; if it persists, see the error",
                ));
                continue;
            }
        };
        let Some(course) = course else {
            r.add(Finding::problem(
                "template_course",
                format!("{labels}: Moodle has no course {id}, or the token's user cannot see it ({})", t.missing_code()),
                "check the id in the template's URL in Moodle (course/view.php?id=…) and link the right one (PUT /api/v1/environments/{id} with moodle_template_course_id); a hidden course needs moodle/course:viewhiddencourses",
            ));
            continue;
        };
        r.templates_found.push(id);
        r.add(Finding::ok(
            "template_course",
            format!("{labels}: course {id} {:?} exists", course.shortname),
        ));
        r.add(if course.enrollmentmethods.iter().any(|m| m == "manual") {
            Finding::ok(
                "template_manual_enrolment",
                format!("course {id} {:?} has an enabled manual enrolment method", course.shortname),
            )
        } else {
            Finding::warning(
                "template_manual_enrolment",
                format!(
                    "course {id} {:?} ({labels}) has no enabled manual enrolment method (its methods: {}). Its duplicates get the site's default methods, not the template's, so this alone does not stop enrolments; but if the manual enrolment plugin is disabled on the site, no course takes the engine's enrolments (wsnoinstance)",
                    course.shortname,
                    if course.enrollmentmethods.is_empty() { "none".to_string() } else { course.enrollmentmethods.join(", ") }
                ),
                format!("in the course, add or enable it (Course {id} > Participants > Enrolment methods > Add method > Manual enrolments, or the eye icon); check the plugin is enabled with Add instance to new courses on (Site administration > Plugins > Enrolments > Manage enrol plugins, and > Manual enrolments); moodle check --probe enrols for real"),
            )
        });
    }
}

/// The roles to assign exist and the token's user may assign them.
///
/// Moodle 4.4 has no function that lists roles or what a user may assign. But
/// `core_role_unassign_roles` checks the role against `get_assignable_roles()` of the context
/// (the test `enrol_manual_enrol_users` applies) before anything else, and unassigning a role
/// nobody holds changes nothing: so it is asked to take each role from user id -1, which no
/// account can have, in a course context (the first template found, else the front page).
/// `null` means assignable; `invalidparameter` means the role does not exist or may not be
/// assigned (observed on the lab for 1, manager, and 999).
pub(super) async fn roles(client: &MoodleClient, settings: &MoodleSettings, r: &mut CheckReport) {
    let mut roles: Vec<(i64, &str)> = Vec::new();
    for (var, id) in [
        ("MOODLE_INSTRUCTOR_ROLE_ID", settings.instructor_role_id),
        ("MOODLE_STUDENT_ROLE_ID", settings.student_role_id),
    ] {
        roles.push((id, var));
    }
    if roles[0].0 == roles[1].0 {
        roles[0].1 = "MOODLE_INSTRUCTOR_ROLE_ID and MOODLE_STUDENT_ROLE_ID";
        roles.truncate(1);
    }
    if !r.service_has("core_role_unassign_roles") {
        for (id, var) in roles {
            r.add(Finding::skipped(
                "role",
                format!("{var}: whether role {id} may be assigned could not be checked: core_role_unassign_roles is not in the token's service"),
                format!("add core_role_unassign_roles ({SERVICE_FUNCTIONS_PATH}); the engine needs it too"),
            ));
        }
        return;
    }
    let (course, place) = match r.templates_found.first() {
        Some(id) => (*id, format!("template course {id}")),
        None => {
            let site = r.site.as_ref().and_then(|s| s.siteid).unwrap_or(1);
            (site, format!("the front page (course {site})"))
        }
    };
    for (id, var) in roles {
        let asked = client
            .unassign_roles(&[RoleUnassignment {
                user_id: -1,
                course_id: course,
                role_id: id,
            }])
            .await;
        r.add(match asked {
            Ok(()) => Finding::ok(
                "role",
                format!("{var}: role {id} may be assigned by the token's user (asked in {place})"),
            ),
            Err(e) if e.errorcode() == Some("invalidparameter") => Finding::problem(
                "role",
                format!("{var}: role {id} does not exist, or the token's user may not assign it in a course: every enrolment with it would fail (wsusercannotassign)"),
                format!("find the role's id in {ROLES_PATH} (the id is in the role's link, roleid=…) and set {var} to it; on the Allow role assignments tab there, let the web-service user's role assign it (3 = editingteacher and 5 = student on a default site)"),
            ),
            Err(e) if e.refusal() == Some(Refusal::MissingCapability) => Finding::problem(
                "role",
                format!("{var}: the token's user may not assign roles in {place}: {e}"),
                "give the web-service user's role moodle/role:assign and enrol/manual:enrol at system level (docs/operations.md, Setting Moodle up, step 2)",
            ),
            Err(e) => Finding::skipped(
                "role",
                format!("{var}: whether role {id} may be assigned could not be checked: {e}"),
                "run moodle check --probe, which enrols with each role for real",
            ),
        });
    }
}

/// The auth plugin of new accounts: `manual` and `nologin` are always enabled; any other
/// cannot be read over web services (see the module's documentation): skipped, with what to
/// verify.
pub(super) fn new_user_auth(auth: &str) -> Finding {
    if super::always_enabled_auth(auth) {
        return Finding::ok(
            "new_user_auth",
            format!("MOODLE_NEW_USER_AUTH={auth}: Moodle always has it enabled"),
        );
    }
    Finding::skipped(
        "new_user_auth",
        format!("MOODLE_NEW_USER_AUTH={auth}: whether the plugin is enabled cannot be read over web services, and Moodle creates accounts for an installed but disabled plugin without complaint (the real 4.4 did), whose owners then cannot log in"),
        format!("check {auth} is enabled in Site administration > Plugins > Authentication > Manage authentication (the eye icon open)"),
    )
}
