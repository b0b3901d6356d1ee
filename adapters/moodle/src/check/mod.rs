//! Preflight: what an administrator can get wrong in Moodle, found before the first event.
//!
//! The quick check ([`check`], [`check_for`], [`check_with`]) only reads (its one call that
//! looks like a change, `core_role_unassign_roles` for an account id that cannot exist, changes
//! nothing: see [`findings`]): reachability, the token, the release, the service's functions,
//! whether the token's user is a site admin, every configured category and linked template
//! course, whether each template takes manual enrolments, the roles to assign, and the auth
//! plugin of new accounts. [`probe`] goes further and runs one real provisioning round on a
//! scratch course, removing what it made. Each line is a [`Finding`] with what to change in
//! Moodle; the report keeps its older flat fields (`problems`, `notes`, the function lists) as
//! they were.
//!
//! What no call can answer is said as a finding `skipped` (and a note) for people to verify by
//! hand: whether the auth plugin new accounts get (MOODLE_NEW_USER_AUTH) is enabled. No
//! web-service function tells a token which plugins are enabled (Moodle 4.4's `core_auth_*`
//! functions are about sign-up and consent; `tool_mobile_get_public_config` says only whether
//! `none` is enabled, which plugin self-registration uses, and the identity providers shown on
//! the login page), and `core_user_create_users` checks only that the plugin is installed: on
//! the lab it created `ldap` and `oauth2` accounts while only `email` was enabled.

use serde::Serialize;

use crate::client::MoodleClient;
use crate::config::MoodleSettings;
use crate::error::MoodleError;
use crate::targets::Target;
use crate::types::SiteInfo;

mod findings;
pub mod probe;
mod probe_cleanup;
mod probe_round;
mod render;

pub use probe::{ProbeOptions, ProbeReport, ProbeStep};

/// Every web-service function the engine calls; the token's external service must hold them all.
pub const REQUIRED_FUNCTIONS: &[&str] = &[
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
];

/// How one finding came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but should be changed (never a reason for `ok` to be false).
    Warning,
    /// Events would fail or park: `ok` is false.
    Problem,
    /// Could not be checked (said why in `detail`; `fix` says what to verify by hand).
    Skipped,
}

impl Status {
    /// `ok`, `warning`, `problem`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the preflight.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// What was checked, a stable name: `url`, `token`, `site_version`, `functions`,
    /// `token_user`, `category`, `template_course`, `template_manual_enrolment`, `role`,
    /// `new_user_auth` (several lines may share one: one per category, template or role).
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, naming the setting or environment concerned.
    pub detail: String,
    /// What to change (in Moodle, with its Site administration path, or in the settings);
    /// `None` when there is nothing to do.
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn warning(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            name,
            status: Status::Warning,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn problem(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            name,
            status: Status::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn skipped(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            name,
            status: Status::Skipped,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The finding as one line: the detail, then the fix.
    pub fn line(&self) -> String {
        match &self.fix {
            Some(fix) => format!("{}: {fix}", self.detail),
            None => self.detail.clone(),
        }
    }
}

/// Result of the preflight.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CheckReport {
    /// Moodle answered (with anything but a transport error).
    pub reachable: bool,
    /// The token was accepted.
    pub token_valid: bool,
    /// Site name.
    pub sitename: Option<String>,
    /// Site release, e.g. `4.4 (Build: 20240422)`.
    pub release: Option<String>,
    /// Site version, e.g. `2024042200`.
    pub version: Option<String>,
    /// Required functions present in the token's service.
    pub functions_found: Vec<String>,
    /// Required functions missing from it.
    pub functions_missing: Vec<String>,
    /// No finding is a problem (and the probe, if it ran, found none either).
    pub ok: bool,
    /// Every finding that is a problem, as one line: what is wrong and what to do.
    pub problems: Vec<String>,
    /// What the check cannot see and a person should verify, one line each (never a reason
    /// for `ok` to be false).
    pub notes: Vec<String>,
    /// Every finding that is a warning, as one line (never a reason for `ok` to be false).
    pub warnings: Vec<String>,
    /// Every finding, in order: `{name, status, detail, fix}`.
    pub checks: Vec<Finding>,
    /// The provisioning round of `moodle check --probe`, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
    /// What `core_webservice_get_site_info` answered (for the probe).
    #[serde(skip)]
    pub(crate) site: Option<SiteInfo>,
    /// The template courses found, in the order they were asked about.
    #[serde(skip)]
    pub(crate) templates_found: Vec<i64>,
}

impl CheckReport {
    /// Records a finding, its line in `problems` or `warnings` too.
    pub(crate) fn add(&mut self, f: Finding) {
        match f.status {
            Status::Problem => self.problems.push(f.line()),
            Status::Warning => self.warnings.push(f.line()),
            Status::Ok | Status::Skipped => {}
        }
        self.checks.push(f);
    }

    fn finish(&mut self) {
        self.ok = !self.checks.iter().any(|c| c.status == Status::Problem)
            && !matches!(&self.probe, Some(p) if !p.ok);
    }

    /// Whether the token's service holds `function` (false before the site answered).
    pub fn service_has(&self, function: &str) -> bool {
        self.site
            .as_ref()
            .is_some_and(|s| s.functions.iter().any(|f| f.name == function))
    }
}

/// Auth plugins Moodle always has enabled (`get_enabled_auth_plugins()` adds them itself).
const ALWAYS_ENABLED_AUTH: &[&str] = &["manual", "nologin"];

/// Whether `auth` is one Moodle always has enabled.
pub(crate) fn always_enabled_auth(auth: &str) -> bool {
    ALWAYS_ENABLED_AUTH.contains(&auth)
}

/// The note about the auth plugin of new accounts: `None` for one that is always enabled.
pub fn auth_plugin_note(auth: Option<&str>) -> Option<String> {
    if auth.is_some_and(always_enabled_auth) {
        return None;
    }
    let named = match auth {
        Some(a) => format!("the auth plugin {a:?} (MOODLE_NEW_USER_AUTH)"),
        None => "the auth plugin named by MOODLE_NEW_USER_AUTH (unless manual)".to_string(),
    };
    Some(format!(
        "whether {named} is enabled cannot be read over web services: check it is enabled in \
         Site administration > Plugins > Authentication > Manage authentication. Moodle \
         creates accounts for an installed but disabled plugin without complaint, and their \
         owners then cannot log in"
    ))
}

/// [`check`], with the note about the auth plugin the settings give new accounts (none for
/// `manual`, which Moodle always enables), the categories the settings name and the roles
/// they assign.
pub async fn check_for(client: &MoodleClient, settings: &MoodleSettings) -> CheckReport {
    check_with(client, settings, &[]).await
}

/// [`check_for`], and what the recorded environments point at (`targets`:
/// [`crate::targets::of_environment`]): each missing category or template course is a problem
/// naming who points at it, each template without an enabled manual enrolment method a warning.
pub async fn check_with(
    client: &MoodleClient,
    settings: &MoodleSettings,
    targets: &[(String, Target)],
) -> CheckReport {
    let mut r = check_site(client).await;
    r.notes = auth_plugin_note(Some(&settings.new_user_auth))
        .into_iter()
        .collect();
    if r.reachable && r.token_valid {
        let mut all = crate::targets::of_settings(settings);
        all.extend_from_slice(targets);
        findings::categories(client, &all, &mut r).await;
        findings::templates(client, &all, &mut r).await;
        findings::roles(client, settings, &mut r).await;
    }
    r.add(findings::new_user_auth(&settings.new_user_auth));
    r.finish();
    r
}

/// [`check_with`], then the provisioning round of [`probe::probe`] when the quick check leaves
/// it something to work with (the token valid, every required function in the service).
pub async fn check_and_probe(
    client: &MoodleClient,
    settings: &MoodleSettings,
    targets: &[(String, Target)],
    opts: &ProbeOptions,
) -> CheckReport {
    let mut all = targets.to_vec();
    if let Some(id) = opts.template {
        let given = Target::TemplateCourse(id);
        if !all.iter().any(|(_, t)| *t == given) {
            all.push(("--template".to_string(), given));
        }
    }
    let mut r = check_with(client, settings, &all).await;
    r.probe = Some(probe::probe(client, settings, targets, opts, &r).await);
    r.finish();
    r
}

/// Runs the preflight of the site alone. Never fails: every problem ends up in
/// [`CheckReport::problems`]. Without the settings, the note about the auth plugin names none
/// and no category, template or role is looked at: see [`check_for`].
pub async fn check(client: &MoodleClient) -> CheckReport {
    let mut r = check_site(client).await;
    r.notes = auth_plugin_note(None).into_iter().collect();
    r.finish();
    r
}

async fn check_site(client: &MoodleClient) -> CheckReport {
    let mut r = CheckReport::default();
    match client.site_info().await {
        Ok(info) => {
            r.reachable = true;
            r.token_valid = true;
            r.sitename = Some(info.sitename.clone());
            r.release = info.release.clone();
            r.version = info.version.clone();
            r.add(Finding::ok(
                "url",
                format!("Moodle answered at {}", client.endpoint()),
            ));
            r.add(Finding::ok(
                "token",
                format!(
                    "accepted: the token belongs to {:?} (user id {})",
                    info.username, info.userid
                ),
            ));
            r.add(findings::site_version(
                info.release.as_deref(),
                info.version.as_deref(),
            ));
            for f in REQUIRED_FUNCTIONS {
                if info.functions.iter().any(|x| x.name == *f) {
                    r.functions_found.push(f.to_string());
                } else {
                    r.functions_missing.push(f.to_string());
                }
            }
            r.add(findings::functions(&r.functions_missing));
            r.add(findings::token_user(&info));
            r.site = Some(info);
        }
        Err(e) => {
            r.reachable = !matches!(e, MoodleError::Transport { .. });
            r.token_valid = false;
            r.add(findings::unreachable(client, &e));
        }
    }
    r
}
