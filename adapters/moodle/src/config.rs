//! Moodle settings read from `MOODLE_*` variables.
//!
//! Parsing is strict: a malformed value is an error naming the variable, because a silently ignored
//! typo (say a role id) would enrol people with the wrong role on a live site.

use std::time::Duration;

use crate::secret::Secret;

mod course;

pub use domain::course::{CourseDefaults, CourseVisibility};
pub use domain::settings::{
    is_internal_auth, NewUserPassword, RemovalMode, UserMatchField, UsernameCollision,
    UsernameSource,
};

/// A configuration problem, always naming the variable concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse.
    #[error("{var}: expected {expected}, got {got:?}")]
    Invalid {
        /// Variable name.
        var: &'static str,
        /// What was expected, e.g. "a positive integer".
        expected: &'static str,
        /// The offending value (never a token: the token is not validated beyond presence).
        got: String,
    },
    /// Two settings that cannot go together.
    #[error("{var}: {reason}")]
    Conflict {
        /// Variable name.
        var: &'static str,
        /// Why, and what to change.
        reason: String,
    },
    /// A variable required when Moodle is enabled.
    #[error("{var} is required when MOODLE_ENABLED is true")]
    Missing {
        /// Variable name.
        var: &'static str,
    },
    /// An `http://` URL without `MOODLE_ALLOW_INSECURE_HTTP`.
    #[error("MOODLE_URL: {url:?} is not https; the token would travel in clear text (set MOODLE_ALLOW_INSECURE_HTTP=true for a local test site)")]
    InsecureUrl {
        /// The URL.
        url: String,
    },
}

/// All Moodle settings. `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct MoodleSettings {
    /// MOODLE_ENABLED (default false).
    pub enabled: bool,
    /// MOODLE_URL: the site's wwwroot, without trailing slash.
    pub url: Option<String>,
    /// MOODLE_TOKEN.
    pub token: Option<Secret>,
    /// MOODLE_USER_MATCH_FIELD: `email` (default), `username` or `idnumber`.
    pub user_match_field: UserMatchField,
    /// MOODLE_COURSE_CATEGORY_ID: where event courses are created.
    pub course_category_id: Option<i64>,
    /// MOODLE_DELETE_COURSE_ON_EVENT_DELETE (default false).
    pub delete_course_on_event_delete: bool,
    /// MOODLE_INSTRUCTOR_ROLE_ID (default 3, editingteacher).
    pub instructor_role_id: i64,
    /// MOODLE_STUDENT_ROLE_ID (default 5, student).
    pub student_role_id: i64,
    /// MOODLE_REMOVAL_MODE: `unenrol` (default) or `suspend`.
    pub removal_mode: RemovalMode,
    /// MOODLE_NEW_USER_AUTH (default `manual`).
    pub new_user_auth: String,
    /// MOODLE_USERNAME_SOURCE (default `username`: the participant's, else the email's local part).
    pub username_source: UsernameSource,
    /// MOODLE_USERNAME_COLLISION (default `suffix`).
    pub username_collision: UsernameCollision,
    /// MOODLE_NEW_USER_PASSWORD (default `email`).
    pub new_user_password: NewUserPassword,
    /// MOODLE_UPDATE_ACCOUNTS (default false).
    pub update_accounts: bool,
    /// MOODLE_ALLOW_INSECURE_HTTP (default false).
    pub allow_insecure_http: bool,
    /// MOODLE_TIMEOUT_SECS (default 30).
    pub timeout: Duration,
    /// MOODLE_DUPLICATE_TIMEOUT_SECS (default 600): duplication runs backup+restore in the request.
    pub duplicate_timeout: Duration,
    /// MOODLE_CONNECT_TIMEOUT_SECS (default 10).
    pub connect_timeout: Duration,
    /// MOODLE_MAX_INPUT_VARS: override of PHP's max_input_vars used to size batches.
    pub max_input_vars: Option<usize>,
    /// MOODLE_COURSE_FULLNAME_TEMPLATE, _SHORTNAME_TEMPLATE, _IDNUMBER_TEMPLATE,
    /// MOODLE_COURSE_VISIBILITY and MOODLE_ARCHIVE_CATEGORY_ID: how a course is shaped where its
    /// environment does not say. Its `category_id` is not read: [`MoodleSettings::course_defaults`]
    /// takes MOODLE_COURSE_CATEGORY_ID.
    pub course: CourseDefaults,
}

impl Default for MoodleSettings {
    fn default() -> Self {
        Self::disabled()
    }
}

impl MoodleSettings {
    /// Moodle integration switched off, every other field at its default.
    pub fn disabled() -> Self {
        MoodleSettings {
            enabled: false,
            url: None,
            token: None,
            user_match_field: UserMatchField::Email,
            course_category_id: None,
            delete_course_on_event_delete: false,
            instructor_role_id: 3,
            student_role_id: 5,
            removal_mode: RemovalMode::Unenrol,
            new_user_auth: "manual".to_string(),
            username_source: UsernameSource::Username,
            username_collision: UsernameCollision::Suffix,
            new_user_password: NewUserPassword::Email,
            update_accounts: false,
            allow_insecure_http: false,
            timeout: Duration::from_secs(30),
            duplicate_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_input_vars: None,
            course: CourseDefaults::default(),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (a variable name → its value); empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let d = Self::disabled();
        let mut s = MoodleSettings {
            enabled: opt(get("MOODLE_ENABLED"), "MOODLE_ENABLED", parse_bool)?.unwrap_or(false),
            url: get("MOODLE_URL").map(|u| u.trim_end_matches('/').to_string()),
            token: token(lookup("MOODLE_TOKEN"))?,
            user_match_field: opt(
                get("MOODLE_USER_MATCH_FIELD"),
                "MOODLE_USER_MATCH_FIELD",
                UserMatchField::parse,
            )?
            .unwrap_or_default(),
            course_category_id: opt(
                get("MOODLE_COURSE_CATEGORY_ID"),
                "MOODLE_COURSE_CATEGORY_ID",
                pos_int,
            )?,
            delete_course_on_event_delete: opt(
                get("MOODLE_DELETE_COURSE_ON_EVENT_DELETE"),
                "MOODLE_DELETE_COURSE_ON_EVENT_DELETE",
                parse_bool,
            )?
            .unwrap_or(false),
            instructor_role_id: opt(
                get("MOODLE_INSTRUCTOR_ROLE_ID"),
                "MOODLE_INSTRUCTOR_ROLE_ID",
                pos_int,
            )?
            .unwrap_or(d.instructor_role_id),
            student_role_id: opt(
                get("MOODLE_STUDENT_ROLE_ID"),
                "MOODLE_STUDENT_ROLE_ID",
                pos_int,
            )?
            .unwrap_or(d.student_role_id),
            removal_mode: opt(
                get("MOODLE_REMOVAL_MODE"),
                "MOODLE_REMOVAL_MODE",
                RemovalMode::parse,
            )?
            .unwrap_or_default(),
            new_user_auth: get("MOODLE_NEW_USER_AUTH").unwrap_or(d.new_user_auth),
            username_source: opt(
                get("MOODLE_USERNAME_SOURCE"),
                "MOODLE_USERNAME_SOURCE",
                UsernameSource::parse,
            )?
            .unwrap_or_default(),
            username_collision: opt(
                get("MOODLE_USERNAME_COLLISION"),
                "MOODLE_USERNAME_COLLISION",
                UsernameCollision::parse,
            )?
            .unwrap_or_default(),
            new_user_password: opt(
                get("MOODLE_NEW_USER_PASSWORD"),
                "MOODLE_NEW_USER_PASSWORD",
                NewUserPassword::parse,
            )?
            .unwrap_or_default(),
            update_accounts: opt(
                get("MOODLE_UPDATE_ACCOUNTS"),
                "MOODLE_UPDATE_ACCOUNTS",
                parse_bool,
            )?
            .unwrap_or(false),
            allow_insecure_http: opt(
                get("MOODLE_ALLOW_INSECURE_HTTP"),
                "MOODLE_ALLOW_INSECURE_HTTP",
                parse_bool,
            )?
            .unwrap_or(false),
            timeout: secs(get("MOODLE_TIMEOUT_SECS"), "MOODLE_TIMEOUT_SECS", d.timeout)?,
            duplicate_timeout: secs(
                get("MOODLE_DUPLICATE_TIMEOUT_SECS"),
                "MOODLE_DUPLICATE_TIMEOUT_SECS",
                d.duplicate_timeout,
            )?,
            connect_timeout: secs(
                get("MOODLE_CONNECT_TIMEOUT_SECS"),
                "MOODLE_CONNECT_TIMEOUT_SECS",
                d.connect_timeout,
            )?,
            max_input_vars: opt(get("MOODLE_MAX_INPUT_VARS"), "MOODLE_MAX_INPUT_VARS", |v| {
                pos_int(v).map(|n| n as usize)
            })?,
            course: CourseDefaults::default(),
        };
        s.course = course::defaults(&get)?;
        let auth = &s.new_user_auth;
        if !auth
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(ConfigError::Invalid {
                var: "MOODLE_NEW_USER_AUTH",
                expected: "an auth plugin name such as manual, oauth2 or saml2",
                got: auth.clone(),
            });
        }
        if s.new_user_password == NewUserPassword::None && is_internal_auth(auth) {
            return Err(ConfigError::Conflict {
                var: "MOODLE_NEW_USER_PASSWORD",
                reason: format!(
                    "none cannot go with MOODLE_NEW_USER_AUTH={auth}: Moodle keeps the \
                     passwords of {auth} accounts and refuses one created without a password; \
                     use email, or a single sign-on auth plugin (oauth2, saml2, ldap, cas, \
                     shibboleth)"
                ),
            });
        }
        if let Some(url) = s.url.take() {
            s.url = Some(check_url(&url, s.allow_insecure_http)?);
        }
        if s.enabled {
            if s.url.is_none() {
                return Err(ConfigError::Missing { var: "MOODLE_URL" });
            }
            if s.token.is_none() {
                return Err(ConfigError::Missing {
                    var: "MOODLE_TOKEN",
                });
            }
            if s.course_category_id.is_none() {
                return Err(ConfigError::Missing {
                    var: "MOODLE_COURSE_CATEGORY_ID",
                });
            }
        }
        Ok(s)
    }
}

impl MoodleSettings {
    /// What a deploy resolves its course from where the environment does not say.
    pub fn course_defaults(&self) -> CourseDefaults {
        CourseDefaults {
            category_id: self.course_category_id,
            ..self.course.clone()
        }
    }

    /// The settings the saga's rules and the event view read: the one translation of the
    /// `MOODLE_*` settings into them, used by the worker, the API and every command alike.
    pub fn saga(&self) -> projections::saga::SagaSettings {
        projections::saga::SagaSettings {
            enabled: self.enabled,
            user_match_field: self.user_match_field,
            category_id: self.course_category_id.unwrap_or(1),
            delete_course_on_event_delete: self.delete_course_on_event_delete,
            instructor_role_id: self.instructor_role_id,
            student_role_id: self.student_role_id,
            removal_mode: self.removal_mode,
            new_user_auth: self.new_user_auth.clone(),
            username_source: self.username_source,
            username_collision: self.username_collision,
            new_user_password: self.new_user_password,
            update_accounts: self.update_accounts,
        }
    }
}

/// Validates a wwwroot: absolute http(s) URL with a host; https unless insecure HTTP is allowed.
pub(crate) fn check_url(url: &str, allow_insecure_http: bool) -> Result<String, ConfigError> {
    let bad = || ConfigError::Invalid {
        var: "MOODLE_URL",
        expected: "an absolute https:// URL of the Moodle site (its wwwroot)",
        got: url.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    // The endpoint instead of the site: the client would post to …/server.php/webservice/…
    let path = parsed.path().trim_end_matches('/');
    if let Some(root) = path
        .strip_suffix("/webservice/rest/server.php")
        .or_else(|| path.strip_suffix("/webservice/rest"))
    {
        let mut site = parsed.clone();
        site.set_path(root);
        return Err(ConfigError::Conflict {
            var: "MOODLE_URL",
            reason: format!(
                "{url:?} is the REST endpoint, not the site: give the site's wwwroot, {:?} (the engine adds /webservice/rest/server.php itself)",
                site.as_str().trim_end_matches('/')
            ),
        });
    }
    if parsed.host_str().is_none() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad());
    }
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(ConfigError::InsecureUrl {
                url: url.to_string(),
            })
        }
        _ => return Err(bad()),
    }
    Ok(url.trim_end_matches('/').to_string())
}

pub(crate) fn opt<T>(
    v: Option<String>,
    var: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    match v {
        None => Ok(None),
        Some(raw) => parse(&raw).map(Some).ok_or(ConfigError::Invalid {
            var,
            expected: expected_for(var),
            got: raw,
        }),
    }
}

fn expected_for(var: &str) -> &'static str {
    match var {
        "MOODLE_USER_MATCH_FIELD" => UserMatchField::EXPECTED,
        "MOODLE_REMOVAL_MODE" => RemovalMode::EXPECTED,
        "MOODLE_COURSE_VISIBILITY" => "visible, hidden or at_start",
        v if v.ends_with("_ENABLED") || v.contains("ALLOW") || v.contains("DELETE") => {
            "true or false"
        }
        _ => "a positive integer",
    }
}

fn secs(v: Option<String>, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(opt(v, var, pos_int)?
        .map(|n| Duration::from_secs(n as u64))
        .unwrap_or(default))
}

pub(crate) fn pos_int(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().filter(|n| *n > 0)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// MOODLE_TOKEN: blank is unset; surrounding whitespace is refused rather than trimmed, since
/// it is a mistake (a newline `echo` wrote into an env file) that the operator should see once,
/// at start-up, not a value to guess about. The message never quotes the value.
fn token(value: Option<String>) -> Result<Option<Secret>, ConfigError> {
    match value {
        Some(t) if t.trim().is_empty() => Ok(None),
        Some(t) if t.trim() != t => Err(ConfigError::Conflict {
            var: "MOODLE_TOKEN",
            reason: WHITESPACE.into(),
        }),
        Some(t) => Ok(Some(Secret::new(t))),
        None => Ok(None),
    }
}

/// Why a token with surrounding whitespace is refused, and what to do.
pub const WHITESPACE: &str = "the value has surrounding whitespace (a trailing newline or space, e.g. from `echo` into an env file); remove it, or give it in the variable's _FILE (one trailing newline is removed there)";

#[cfg(test)]
mod tests;
