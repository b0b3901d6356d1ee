//! `moodle check --probe`: one real provisioning round on a scratch course, removed afterwards.
//!
//! The round does what a deploy does, with names nobody else uses (`OVLE-PROBE-<random>`):
//! duplicate a template into the configured category, set the copy's idnumber, check the copy
//! takes manual enrolments, find or create a probe account with the configured auth plugin,
//! enrol it with each configured role, unenrol it. Whatever happened, the cleanup then deletes
//! the scratch course (looked up by its shortname when a duplication's answer was lost) and the
//! probe account if the probe made it and the service holds `core_user_delete_users` (not one
//! of the engine's functions: without it the account `openvle.probe` is left, said so, and
//! reused by the next probe). Each step says how long it took; whatever could not be removed
//! is named in `left_behind` with where to delete it by hand.
//!
//! The probe is a future like any other: dropped halfway (a client gone, a process killed)
//! its cleanup does not run. The HTTP API runs it in a task of its own for that reason.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::MoodleClient;
use crate::config::{is_internal_auth, MoodleSettings};
use crate::error::{MoodleError, Refusal};
use crate::secret::Secret;
use crate::targets::Target;
use crate::types::*;

use super::findings::SERVICE_FUNCTIONS_PATH;
use super::{CheckReport, Status};

/// What to probe with.
#[derive(Clone, Debug, Default)]
pub struct ProbeOptions {
    /// The template to duplicate; `None`: the first linked one (environments first, in the
    /// order the check lists them).
    pub template: Option<i64>,
}

/// One step of the probe.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeStep {
    /// `duplicate`, `set_idnumber`, `manual_enrolment`, `account`, `enrol`, `unenrol`,
    /// `delete_course`, `delete_account` (or `start` when the probe could not begin).
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What happened.
    pub detail: String,
    /// What to change when it did not work.
    pub fix: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// The probe's outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeReport {
    /// No step is a problem.
    pub ok: bool,
    /// The template duplicated.
    pub template_course_id: Option<i64>,
    /// The scratch course's shortname (and idnumber).
    pub scratch_shortname: Option<String>,
    /// The scratch course's id, once Moodle made it (deleted by the cleanup unless
    /// `left_behind` says otherwise).
    pub scratch_course_id: Option<i64>,
    /// Every step, cleanup included, in order.
    pub steps: Vec<ProbeStep>,
    /// Nothing the probe made is left in Moodle (the account `openvle.probe`, reused by every
    /// probe when the service cannot delete accounts, is not counted).
    pub cleaned_up: bool,
    /// What is left and how to remove it by hand.
    pub left_behind: Vec<String>,
    /// Total time, in milliseconds.
    pub duration_ms: u64,
}

/// The account every probe reuses when the service cannot delete accounts.
pub const SHARED_PROBE_USERNAME: &str = "openvle.probe";

/// What the probe has made so far.
#[derive(Default)]
struct Scratch {
    shortname: String,
    /// The scratch course, once known.
    course: Option<i64>,
    /// A duplication may have made the course although it failed: look it up.
    course_maybe: bool,
    /// The probe account and whether this probe created it.
    account: Option<(i64, String, bool)>,
    /// A creation may have made the account although it failed: look it up.
    account_maybe: Option<String>,
}

struct Run<'a> {
    client: &'a MoodleClient,
    report: ProbeReport,
}

impl Run<'_> {
    fn step(
        &mut self,
        name: &'static str,
        started: Instant,
        status: Status,
        detail: String,
        fix: Option<String>,
    ) {
        self.report.steps.push(ProbeStep {
            name,
            status,
            detail,
            fix,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    fn ok(&mut self, name: &'static str, started: Instant, detail: String) {
        self.step(name, started, Status::Ok, detail, None);
    }

    /// A step that failed: recorded as a problem; the round stops.
    fn failed(&mut self, name: &'static str, started: Instant, detail: String, fix: String) {
        self.step(name, started, Status::Problem, detail, Some(fix));
    }
}

/// What to change in Moodle for an error of the probe's step `step`.
fn fix_for(step: &str, e: &MoodleError) -> String {
    match e.refusal() {
        Some(Refusal::RoleNotAssignable) => "on Site administration > Users > Permissions > Define roles > Allow role assignments, let the web-service user's role assign the role, or set MOODLE_INSTRUCTOR_ROLE_ID / MOODLE_STUDENT_ROLE_ID to a role it may assign".into(),
        Some(Refusal::NoManualEnrolment) => MANUAL_FIX.into(),
        Some(Refusal::MissingCapability) => format!("give the web-service user's role the capabilities of docs/operations.md, Setting Moodle up, step 2 (Site administration > Users > Permissions > Define roles); the {step} step needs them"),
        Some(Refusal::NotInService) => format!("add the function to the token's service ({SERVICE_FUNCTIONS_PATH})"),
        Some(Refusal::MissingCategory) => "MOODLE_COURSE_CATEGORY_ID names no category: check the id in Site administration > Courses > Manage courses and categories".into(),
        Some(Refusal::MissingCourse) if step == "duplicate" => "the template course does not exist: check its id (course/view.php?id=…) and link the right one".into(),
        Some(Refusal::PasswordPolicy) => "the site's password policy refused the probe's generated password (Site administration > Security > Site security settings > Password policy)".into(),
        _ => e.advice(),
    }
}

const MANUAL_FIX: &str = "enable the manual enrolment plugin (Site administration > Plugins > Enrolments > Manage enrol plugins, the eye icon) and tick Add instance to new courses in its settings (Site administration > Plugins > Enrolments > Manual enrolments)";

/// The probe's round; never fails: every failure is a step. Runs nothing when `quick` (the
/// quick check's report) says it could not work: an invalid token, or a required function
/// missing from the service (the cleanup needs `core_course_delete_courses` among them).
pub async fn probe(
    client: &MoodleClient,
    settings: &MoodleSettings,
    targets: &[(String, Target)],
    opts: &ProbeOptions,
    quick: &CheckReport,
) -> ProbeReport {
    let started = Instant::now();
    let mut run = Run {
        client,
        report: ProbeReport::default(),
    };
    let refuse = |why: String, fix: &str| ProbeReport {
        ok: false,
        cleaned_up: true,
        steps: vec![ProbeStep {
            name: "start",
            status: Status::Skipped,
            detail: why,
            fix: Some(fix.to_string()),
            duration_ms: 0,
        }],
        ..ProbeReport::default()
    };
    if !quick.token_valid {
        return refuse(
            "the probe did not run: Moodle did not accept the token".into(),
            "fix the problems of the quick check first",
        );
    }
    if !quick.functions_missing.is_empty() {
        return refuse(
            format!(
                "the probe did not run: the token's service lacks {} (it could make a course it cannot delete)",
                quick.functions_missing.join(", ")
            ),
            "add the missing functions first (see the functions line)",
        );
    }
    let template = opts.template.or_else(|| {
        targets.iter().find_map(|(_, t)| match t {
            Target::TemplateCourse(id) => Some(*id),
            Target::Category(_) => None,
        })
    });
    let Some(template) = template else {
        return refuse(
            "the probe did not run: no template course to duplicate (no environment links one)"
                .into(),
            "give one with --template ID (the API: ?template=ID), or link one to an environment",
        );
    };
    let Some(category) = settings.course_category_id else {
        return refuse(
            "the probe did not run: MOODLE_COURSE_CATEGORY_ID is not set".into(),
            "set MOODLE_COURSE_CATEGORY_ID to the category the events' courses go to",
        );
    };
    let tag = format!("{:08x}", rand::random::<u32>());
    let mut scratch = Scratch {
        shortname: format!("OVLE-PROBE-{tag}"),
        ..Scratch::default()
    };
    run.report.template_course_id = Some(template);
    run.report.scratch_shortname = Some(scratch.shortname.clone());
    let can_delete_accounts = quick.service_has("core_user_delete_users");
    round(
        &mut run,
        settings,
        template,
        category,
        &tag,
        can_delete_accounts,
        &mut scratch,
    )
    .await;
    cleanup(&mut run, &mut scratch, can_delete_accounts).await;
    let mut report = run.report;
    report.scratch_course_id = scratch.course;
    report.ok = !report.steps.iter().any(|s| s.status == Status::Problem);
    report.cleaned_up = report.left_behind.is_empty();
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The provisioning steps; returns at the first that fails (the cleanup follows in any case).
async fn round(
    run: &mut Run<'_>,
    settings: &MoodleSettings,
    template: i64,
    category: i64,
    tag: &str,
    can_delete_accounts: bool,
    scratch: &mut Scratch,
) {
    let c = run.client;
    // 1. Duplicate, retried as the engine retries a duplication that left nothing behind.
    let t = Instant::now();
    let req = DuplicateCourse {
        template_id: template,
        fullname: format!("openvle-moodle preflight probe {tag} - safe to delete"),
        shortname: scratch.shortname.clone(),
        category_id: category,
        visible: false,
    };
    let mut attempt = 0;
    let course = loop {
        attempt += 1;
        match c.duplicate_course(&req).await {
            Ok(course) => break course,
            Err(e) if e.is_transient() && !e.outcome_unknown() && attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => {
                scratch.course_maybe = e.outcome_unknown();
                let fix = fix_for("duplicate", &e);
                run.failed(
                    "duplicate",
                    t,
                    format!("duplicating template {template} into category {category}: {e}"),
                    fix,
                );
                return;
            }
        }
    };
    scratch.course = Some(course.id);
    run.ok(
        "duplicate",
        t,
        format!(
            "template {template} duplicated into scratch course {} {:?} in category {category}{}",
            course.id,
            course.shortname,
            if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            }
        ),
    );
    // 2. The idnumber, as a deploy sets it after duplicating.
    let t = Instant::now();
    let update = CourseUpdate {
        id: course.id,
        idnumber: Some(scratch.shortname.clone()),
        ..CourseUpdate::default()
    };
    match c.update_courses(&[update]).await {
        Ok(w) if w.is_empty() => run.ok(
            "set_idnumber",
            t,
            format!("idnumber {:?} set", scratch.shortname),
        ),
        Ok(w) => {
            let e = MoodleError::Warned {
                function: "core_course_update_courses".into(),
                warnings: w,
            };
            let fix = fix_for("set_idnumber", &e);
            run.failed("set_idnumber", t, e.to_string(), fix);
            return;
        }
        Err(e) => {
            let fix = fix_for("set_idnumber", &e);
            run.failed("set_idnumber", t, e.to_string(), fix);
            return;
        }
    }
    // 3. The copy takes manual enrolments.
    let t = Instant::now();
    match c
        .get_courses_by_field(CourseField::Id, &course.id.to_string())
        .await
    {
        Ok(found) => {
            let methods: Vec<String> = found
                .iter()
                .find(|k| k.id == course.id)
                .map(|k| k.enrollmentmethods.clone())
                .unwrap_or_default();
            if methods.iter().any(|m| m == "manual") {
                run.ok(
                    "manual_enrolment",
                    t,
                    format!("the scratch course has an enabled manual enrolment method (its methods: {})", methods.join(", ")),
                );
            } else {
                run.failed(
                    "manual_enrolment",
                    t,
                    format!("the scratch course has no enabled manual enrolment method (its methods: {}): every enrolment would fail with wsnoinstance", if methods.is_empty() { "none".into() } else { methods.join(", ") }),
                    MANUAL_FIX.into(),
                );
                return;
            }
        }
        Err(e) => {
            let fix = fix_for("manual_enrolment", &e);
            run.failed("manual_enrolment", t, e.to_string(), fix);
            return;
        }
    }
    // 4. The probe account.
    let t = Instant::now();
    let auth = settings.new_user_auth.clone();
    let (username, email) = if can_delete_accounts {
        (
            format!("ovle.probe.{tag}"),
            format!("ovle.probe.{tag}@example.invalid"),
        )
    } else {
        (
            SHARED_PROBE_USERNAME.to_string(),
            format!("{SHARED_PROBE_USERNAME}@example.invalid"),
        )
    };
    let found = match c
        .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
        .await
    {
        Ok(found) => found.into_iter().find(|u| u.username == username),
        Err(e) => {
            let fix = fix_for("account", &e);
            run.failed("account", t, format!("looking up {username}: {e}"), fix);
            return;
        }
    };
    let user_id = match found {
        Some(u) => {
            scratch.account = Some((u.id, username.clone(), false));
            run.ok(
                "account",
                t,
                format!(
                    "found the probe account {username:?} (id {}, auth {}) and reused it",
                    u.id,
                    u.auth.as_deref().unwrap_or("?")
                ),
            );
            u.id
        }
        None => {
            let password = is_internal_auth(&auth)
                .then(|| Secret::new(format!("Pr0be-{:016x}!", rand::random::<u64>())));
            let new = NewUser {
                username: username.clone(),
                firstname: "OpenVLE".into(),
                lastname: "Preflight probe".into(),
                email,
                auth: auth.clone(),
                password,
                createpassword: false,
                idnumber: None,
            };
            match c.create_users(&[new]).await {
                Ok(rows) if rows.len() == 1 => {
                    let id = rows[0].id;
                    scratch.account = Some((id, username.clone(), true));
                    // What Moodle stored: it checks only that the plugin is installed.
                    let stored = c
                        .get_users_by_field(UserField::Id, &[id.to_string()])
                        .await
                        .ok()
                        .and_then(|u| u.into_iter().find(|u| u.id == id))
                        .and_then(|u| u.auth);
                    let mut detail = format!(
                        "created the probe account {username:?} (id {id}); Moodle stored auth {}",
                        stored.as_deref().unwrap_or("(not shown)")
                    );
                    if !super::always_enabled_auth(&auth) {
                        detail.push_str(&format!(
                            "; Moodle accepts an installed plugin whether or not it is enabled, so this does not show that {auth} is enabled (check Site administration > Plugins > Authentication > Manage authentication)"
                        ));
                    }
                    run.ok("account", t, detail);
                    id
                }
                Ok(rows) => {
                    run.failed(
                        "account",
                        t,
                        format!("creating {username:?}: Moodle answered {} rows", rows.len()),
                        "see max_input_vars (MOODLE_MAX_INPUT_VARS)".into(),
                    );
                    return;
                }
                Err(e) => {
                    if e.outcome_unknown() {
                        scratch.account_maybe = Some(username.clone());
                    }
                    let fix = if e.errorcode() == Some("invalidparameter") {
                        format!("Moodle refused the account (auth {auth:?}: is the plugin installed? MOODLE_NEW_USER_AUTH must name one of Site administration > Plugins > Authentication > Manage authentication)")
                    } else {
                        fix_for("account", &e)
                    };
                    run.failed("account", t, format!("creating {username:?}: {e}"), fix);
                    return;
                }
            }
        }
    };
    // 5. One enrolment per configured role, each read back.
    let mut roles = vec![(settings.instructor_role_id, "MOODLE_INSTRUCTOR_ROLE_ID")];
    if settings.student_role_id != settings.instructor_role_id {
        roles.push((settings.student_role_id, "MOODLE_STUDENT_ROLE_ID"));
    }
    for (role_id, var) in roles {
        let t = Instant::now();
        let enrolment = Enrolment {
            user_id,
            course_id: course.id,
            role_id,
            suspend: false,
        };
        if let Err(e) = c.enrol_users(&[enrolment]).await {
            let fix = fix_for("enrol", &e);
            run.failed(
                "enrol",
                t,
                format!("enrolling the probe account with role {role_id} ({var}): {e}"),
                fix,
            );
            return;
        }
        match c.get_enrolled_users(course.id, EnrolledFilter::All).await {
            Ok(users) => {
                let held = users
                    .iter()
                    .find(|u| u.id == user_id)
                    .is_some_and(|u| u.roles.iter().any(|r| r.roleid == role_id));
                if held {
                    run.ok(
                        "enrol",
                        t,
                        format!("enrolled with role {role_id} ({var}), read back"),
                    );
                } else {
                    run.failed(
                        "enrol",
                        t,
                        format!("Moodle accepted the enrolment with role {role_id} ({var}) but the participants list does not show it"),
                        "check the web-service user holds moodle/course:enrolreview and moodle/role:review (docs/operations.md, Setting Moodle up, step 2)".into(),
                    );
                    return;
                }
            }
            Err(e) => {
                let fix = fix_for("enrol", &e);
                run.failed(
                    "enrol",
                    t,
                    format!("reading the participants back: {e}"),
                    fix,
                );
                return;
            }
        }
    }
    // 6. Unenrol, read back.
    let t = Instant::now();
    let gone = async {
        c.unenrol_users(&[Unenrolment {
            user_id,
            course_id: course.id,
        }])
        .await?;
        let users = c.get_enrolled_users(course.id, EnrolledFilter::All).await?;
        Ok::<_, MoodleError>(!users.iter().any(|u| u.id == user_id))
    }
    .await;
    match gone {
        Ok(true) => run.ok("unenrol", t, "unenrolled, read back".into()),
        Ok(false) => run.failed(
            "unenrol",
            t,
            "Moodle answered the unenrolment but still lists the probe account".into(),
            "check the web-service user holds enrol/manual:unenrol (docs/operations.md, Setting Moodle up, step 2)".into(),
        ),
        Err(e) => {
            let fix = fix_for("unenrol", &e);
            run.failed("unenrol", t, e.to_string(), fix);
        }
    }
}

/// Removes what the round made, whatever happened in it.
async fn cleanup(run: &mut Run<'_>, scratch: &mut Scratch, can_delete_accounts: bool) {
    let c = run.client;
    let t = Instant::now();
    if scratch.course.is_none() && scratch.course_maybe {
        match c
            .get_courses_by_field(CourseField::Shortname, &scratch.shortname)
            .await
        {
            Ok(found) => scratch.course = found.first().map(|k| k.id),
            Err(e) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!(
                        "the duplication's answer was lost and looking {:?} up failed: {e}",
                        scratch.shortname
                    ),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "perhaps a course {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
        }
    }
    if let Some(id) = scratch.course {
        let deleted = async {
            let warnings = c.delete_courses(&[id]).await?;
            let refused: Vec<_> = warnings
                .into_iter()
                .filter(|w| w.warningcode != "unknowncourseidnumber")
                .collect();
            if !refused.is_empty() {
                return Err(MoodleError::Warned {
                    function: "core_course_delete_courses".into(),
                    warnings: refused,
                });
            }
            let left = c
                .get_courses_by_field(CourseField::Id, &id.to_string())
                .await?;
            Ok(!left.iter().any(|k| k.id == id))
        }
        .await;
        match deleted {
            Ok(true) => run.ok(
                "delete_course",
                t,
                format!("scratch course {id} deleted, and Moodle no longer has it"),
            ),
            Ok(false) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!("Moodle answered the deletion of scratch course {id} but still has it"),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "course {id} {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
            Err(e) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!("deleting scratch course {id}: {e}"),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "course {id} {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
        }
    }
    let t = Instant::now();
    if scratch.account.is_none() {
        if let Some(username) = scratch.account_maybe.clone() {
            if let Ok(found) = c
                .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
                .await
            {
                scratch.account = found
                    .into_iter()
                    .find(|u| u.username == username)
                    .map(|u| (u.id, username, true));
            }
        }
    }
    let Some((id, username, created)) = scratch.account.clone() else {
        return;
    };
    if !created {
        return;
    }
    if !can_delete_accounts {
        run.step(
            "delete_account",
            t,
            Status::Warning,
            format!("the probe account {username:?} (id {id}) was left: core_user_delete_users is not in the token's service (the engine does not need it); the next probe reuses it"),
            Some(format!("to let the probe remove it, add core_user_delete_users ({SERVICE_FUNCTIONS_PATH}) and moodle/user:delete to the web-service user's role; or delete it in Site administration > Users > Browse list of users")),
        );
        return;
    }
    let deleted = async {
        c.delete_users(&[id]).await?;
        let left = c
            .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
            .await?;
        Ok::<_, MoodleError>(!left.iter().any(|u| u.username == username))
    }
    .await;
    let by_hand = format!(
        "delete the account {username:?} (id {id}) in Site administration > Users > Browse list of users"
    );
    match deleted {
        Ok(true) => run.ok(
            "delete_account",
            t,
            format!("probe account {username:?} (id {id}) deleted, and Moodle no longer finds it"),
        ),
        Ok(false) => {
            run.step(
                "delete_account",
                t,
                Status::Problem,
                format!("Moodle answered the deletion of {username:?} but still finds it"),
                Some(by_hand.clone()),
            );
            run.report.left_behind.push(by_hand);
        }
        Err(e) => {
            let fix = if e.refusal() == Some(Refusal::MissingCapability) {
                format!("give the web-service user's role moodle/user:delete, or {by_hand}")
            } else {
                by_hand.clone()
            };
            run.step(
                "delete_account",
                t,
                Status::Problem,
                format!("deleting the probe account {username:?} (id {id}): {e}"),
                Some(fix),
            );
            run.report.left_behind.push(by_hand);
        }
    }
}

fn by_hand_course(shortname: &str) -> String {
    format!("delete the course {shortname:?} in Site administration > Courses > Manage courses and categories (search for OVLE-PROBE)")
}
