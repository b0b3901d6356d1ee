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

use std::time::Instant;

use serde::Serialize;

use crate::client::MoodleClient;
use crate::config::MoodleSettings;
use crate::error::{MoodleError, Refusal};
use crate::targets::Target;

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
pub(super) struct Scratch {
    pub(super) shortname: String,
    /// The scratch course, once known.
    pub(super) course: Option<i64>,
    /// A duplication may have made the course although it failed: look it up.
    pub(super) course_maybe: bool,
    /// The probe account and whether this probe created it.
    pub(super) account: Option<(i64, String, bool)>,
    /// A creation may have made the account although it failed: look it up.
    pub(super) account_maybe: Option<String>,
}

pub(super) struct Run<'a> {
    pub(super) client: &'a MoodleClient,
    pub(super) report: ProbeReport,
}

impl Run<'_> {
    pub(super) fn step(
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

    pub(super) fn ok(&mut self, name: &'static str, started: Instant, detail: String) {
        self.step(name, started, Status::Ok, detail, None);
    }

    /// A step that failed: recorded as a problem; the round stops.
    pub(super) fn failed(
        &mut self,
        name: &'static str,
        started: Instant,
        detail: String,
        fix: String,
    ) {
        self.step(name, started, Status::Problem, detail, Some(fix));
    }
}

/// What to change in Moodle for an error of the probe's step `step`.
pub(super) fn fix_for(step: &str, e: &MoodleError) -> String {
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

pub(super) const MANUAL_FIX: &str = "enable the manual enrolment plugin (Site administration > Plugins > Enrolments > Manage enrol plugins, the eye icon) and tick Add instance to new courses in its settings (Site administration > Plugins > Enrolments > Manual enrolments)";

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
    super::probe_round::round(
        &mut run,
        settings,
        template,
        category,
        &tag,
        can_delete_accounts,
        &mut scratch,
    )
    .await;
    super::probe_cleanup::cleanup(&mut run, &mut scratch, can_delete_accounts).await;
    let mut report = run.report;
    report.scratch_course_id = scratch.course;
    report.ok = !report.steps.iter().any(|s| s.status == Status::Problem);
    report.cleaned_up = report.left_behind.is_empty();
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}
