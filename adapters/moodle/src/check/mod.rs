//! Preflight: is Moodle reachable, is the token valid, and does its service hold every function?
//!
//! One `core_webservice_get_site_info` call answers all three, because it lists the functions of
//! the token's external service. Problems come with what to do about them.
//!
//! What no call can answer is said as a note for people to verify by hand: whether the auth
//! plugin new accounts get (MOODLE_NEW_USER_AUTH) is enabled. No web-service function tells a
//! token which plugins are enabled (Moodle 4.4's `core_auth_*` functions are about sign-up and
//! consent; `tool_mobile_get_public_config` lists only the identity providers shown on the
//! login page, so an enabled plugin without one looks disabled), and `core_user_create_users`
//! checks only that the plugin is installed: on the lab it created `oauth2` accounts while only
//! `email` was enabled.

use serde::Serialize;

use crate::client::MoodleClient;
use crate::config::MoodleSettings;
use crate::error::MoodleError;
use crate::targets::Target;

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

/// Result of [`check`].
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
    /// Everything fine.
    pub ok: bool,
    /// What is wrong and what to do, one line each.
    pub problems: Vec<String>,
    /// What the check cannot see and a person should verify, one line each (never a reason
    /// for `ok` to be false).
    pub notes: Vec<String>,
}

/// Auth plugins Moodle always has enabled (`get_enabled_auth_plugins()` adds them itself).
const ALWAYS_ENABLED_AUTH: &[&str] = &["manual", "nologin"];

/// The note about the auth plugin of new accounts: `None` for one that is always enabled.
pub fn auth_plugin_note(auth: Option<&str>) -> Option<String> {
    if auth.is_some_and(|a| ALWAYS_ENABLED_AUTH.contains(&a)) {
        return None;
    }
    let named = match auth {
        Some(a) => format!("the auth plugin {a:?} (MOODLE_NEW_USER_AUTH)"),
        None => "the auth plugin named by MOODLE_NEW_USER_AUTH (unless manual)".to_string(),
    };
    Some(format!(
        "whether {named} is enabled cannot be read over web services: check it is enabled in          Site administration > Plugins > Authentication > Manage authentication. Moodle          creates accounts for an installed but disabled plugin without complaint, and their          owners then cannot log in"
    ))
}

/// [`check`], with the note about the auth plugin the settings give new accounts (none for
/// `manual`, which Moodle always enables), and the categories the settings name.
pub async fn check_for(client: &MoodleClient, settings: &MoodleSettings) -> CheckReport {
    check_with(client, settings, &[]).await
}

/// [`check_for`], and whether Moodle has each of `targets` (what the recorded environments point
/// at: [`crate::targets::of_environment`]); each missing one is a problem naming who points at it.
pub async fn check_with(
    client: &MoodleClient,
    settings: &MoodleSettings,
    targets: &[(String, Target)],
) -> CheckReport {
    let mut r = check(client).await;
    r.notes = auth_plugin_note(Some(&settings.new_user_auth))
        .into_iter()
        .collect();
    if r.reachable && r.token_valid {
        let mut all = crate::targets::of_settings(settings);
        all.extend_from_slice(targets);
        match crate::targets::missing(client, &all).await {
            Ok(missing) => {
                for (label, target) in &missing {
                    r.problems.push(format!(
                        "{} ({})",
                        target.missing_message(label),
                        target.missing_code()
                    ));
                }
                r.ok &= missing.is_empty();
            }
            Err(e) => {
                r.ok = false;
                r.problems.push(format!(
                    "could not look up the configured categories and template courses: {e}"
                ));
            }
        }
    }
    r
}

/// Runs the preflight. Never fails: every problem ends up in [`CheckReport::problems`]. Without
/// the settings, the note about the auth plugin names none: see [`check_for`].
pub async fn check(client: &MoodleClient) -> CheckReport {
    let mut r = CheckReport::default();
    let mut too_old = false;
    match client.site_info().await {
        Ok(info) => {
            r.reachable = true;
            r.token_valid = true;
            r.sitename = Some(info.sitename);
            r.release = info.release;
            r.version = info.version;
            for f in REQUIRED_FUNCTIONS {
                if info.functions.iter().any(|x| x.name == *f) {
                    r.functions_found.push(f.to_string());
                } else {
                    r.functions_missing.push(f.to_string());
                }
            }
            if !r.functions_missing.is_empty() {
                r.problems.push(format!(
                    "add these functions to the token's external service (Site administration > Server > Web services > External services > Functions): {}",
                    r.functions_missing.join(", ")
                ));
            }
            match r.release.as_deref().and_then(crate::wire::parse_release) {
                Some(v) if v < (3, 11) => {
                    too_old = true;
                    r.problems.push(format!(
                        "Moodle {} is too old: 3.11 or later is required (onlysuspended enrolment filter)",
                        r.release.as_deref().unwrap_or("?")
                    ))
                }
                None => r.problems.push(
                    "Moodle did not report its release; batches are sized for max_input_vars=1000 (set MOODLE_MAX_INPUT_VARS to override)".into(),
                ),
                _ => {}
            }
        }
        Err(e) => {
            r.reachable = !matches!(e, MoodleError::Transport { .. });
            r.token_valid = false;
            r.problems.push(match &e {
                MoodleError::Transport { detail, .. } => {
                    format!("Moodle is not reachable at {} ({detail}): check MOODLE_URL, DNS, TLS and firewalls", client.endpoint())
                }
                MoodleError::BadResponse { .. } => format!(
                    "{} did not answer like Moodle's REST server ({e}): check MOODLE_URL is the site's wwwroot",
                    client.endpoint()
                ),
                _ => e.to_string(),
            });
        }
    }
    r.ok = r.reachable && r.token_valid && r.functions_missing.is_empty() && !too_old;
    r.notes = auth_plugin_note(None).into_iter().collect();
    r
}

impl CheckReport {
    /// A human-readable report for the CLI.
    pub fn render_text(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let mut s = String::new();
        s.push_str(&format!(
            "Moodle check: {}\n",
            if self.ok { "OK" } else { "PROBLEMS FOUND" }
        ));
        s.push_str(&format!("  reachable:   {}\n", yes(self.reachable)));
        s.push_str(&format!("  token valid: {}\n", yes(self.token_valid)));
        if let Some(n) = &self.sitename {
            s.push_str(&format!("  site:        {n}\n"));
        }
        if let Some(rel) = &self.release {
            s.push_str(&format!(
                "  release:     {rel} (version {})\n",
                self.version.as_deref().unwrap_or("?")
            ));
        }
        if self.token_valid {
            s.push_str(&format!(
                "  functions:   {}/{} present\n",
                self.functions_found.len(),
                REQUIRED_FUNCTIONS.len()
            ));
            for f in &self.functions_found {
                s.push_str(&format!("    found:   {f}\n"));
            }
            for f in &self.functions_missing {
                s.push_str(&format!("    missing: {f}\n"));
            }
        }
        for p in &self.problems {
            s.push_str(&format!("  - {p}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}
