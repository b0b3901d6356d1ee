//! Typed Moodle errors and their classification.
//!
//! Moodle answers HTTP 200 for errors and localises `message`, so classification looks at
//! `errorcode` only. Two questions matter to callers: may a retry help ([`MoodleError::is_transient`]),
//! and may the call have taken effect ([`MoodleError::outcome_unknown`], e.g. a timeout after the
//! request was sent: look the object up before retrying).

use crate::config::ConfigError;
use crate::secret::Secret;

/// Longest Moodle errorcode [`MoodleError::code`] passes through.
pub const MAX_CODE_LEN: usize = 64;

/// How a Moodle exception should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retrying later may succeed (locks, DB write races, maintenance).
    Transient,
    /// Retrying the same call will fail the same way (configuration, data, permissions).
    Permanent,
}

impl ErrorClass {
    /// Classifies a Moodle `errorcode`. Unknown codes are permanent: retrying blindly could repeat
    /// a side effect and would hide a new kind of problem from people.
    pub fn of(errorcode: &str) -> Self {
        match errorcode.trim() {
            "ex_unabletolock" | "dmlwriteexception" | "dmlreadexception" | "sitemaintenance" => {
                ErrorClass::Transient
            }
            _ => ErrorClass::Permanent,
        }
    }
}

/// An error from a Moodle web-service call. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum MoodleError {
    /// Moodle answered with an exception body.
    #[error(
        "Moodle {function}: {errorcode} ({message}); {}",
        advice(function, errorcode, message)
    )]
    Moodle {
        /// The `wsfunction` called.
        function: String,
        /// Moodle's `errorcode` (stable; free text for password-policy errors).
        errorcode: String,
        /// Moodle's `message` (localised: for people, not for code).
        message: String,
        /// Transient or permanent.
        class: ErrorClass,
    },
    /// The request failed on the network: refused, reset, timed out, or a 5xx from Moodle or a proxy.
    #[error("Moodle {function}: transport error: {detail}{}", if *outcome_unknown { " (the call may have taken effect)" } else { "" })]
    Transport {
        /// The `wsfunction` called.
        function: String,
        /// What happened (no URL query, no token).
        detail: String,
        /// True once the request may have reached Moodle (timeout, reset after send, 5xx).
        outcome_unknown: bool,
    },
    /// A non-200 status that is not a server error, e.g. 403 when web services or REST are off.
    #[error("Moodle {function}: HTTP {status}; {}", http_advice(*status))]
    Http {
        /// The `wsfunction` called.
        function: String,
        /// HTTP status.
        status: u16,
    },
    /// The body is not what the function returns: an HTML page, truncated or oversized JSON, wrong types.
    #[error("Moodle {function}: unexpected response: {detail}")]
    BadResponse {
        /// The `wsfunction` called.
        function: String,
        /// What was wrong (never the whole body).
        detail: String,
        /// True for bodies a retry may fix (HTML error pages, truncated JSON).
        transient: bool,
    },
    /// Moodle returned a different number of rows than items sent: PHP `max_input_vars` truncated the request.
    #[error("Moodle {function}: sent {sent} items but {returned} came back; PHP max_input_vars probably truncated the request (lower MOODLE_MAX_INPUT_VARS or raise max_input_vars in php.ini)")]
    CountMismatch {
        /// The `wsfunction` called.
        function: String,
        /// Items sent.
        sent: usize,
        /// Rows returned.
        returned: usize,
    },
    /// Input refused locally before sending, because Moodle would fail the whole batch on it.
    #[error("Moodle {function}: invalid input: {detail}")]
    InvalidInput {
        /// The `wsfunction` that would have been called.
        function: String,
        /// What is wrong with which value.
        detail: String,
    },
    /// Settings are incomplete or malformed.
    #[error("Moodle configuration: {0}")]
    Config(#[from] ConfigError),
}

impl MoodleError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            MoodleError::Moodle { class, .. } => *class == ErrorClass::Transient,
            MoodleError::Transport { .. } => true,
            MoodleError::BadResponse { transient, .. } => *transient,
            MoodleError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            MoodleError::CountMismatch { .. }
            | MoodleError::InvalidInput { .. }
            | MoodleError::Config(_) => false,
        }
    }

    /// Whether the call may have changed Moodle although it failed: look up before retrying.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            MoodleError::Transport {
                outcome_unknown, ..
            } => *outcome_unknown,
            MoodleError::BadResponse { .. } | MoodleError::CountMismatch { .. } => true,
            _ => false,
        }
    }

    /// A stable code for logs, metrics and events: the Moodle errorcode, or `transport`,
    /// `http_<status>`, `bad_response`, `count_mismatch`, `invalid_input`, `config`.
    ///
    /// Bounded so that a server cannot choose metric labels: a Moodle errorcode is passed
    /// through only if it is 1 to [`MAX_CODE_LEN`] characters of `[a-z0-9_]`; a blank one gives
    /// `unknown` and anything else (free text such as password-policy refusals, hostile values)
    /// `other`. The errorcode itself stays in [`MoodleError::errorcode`] and the `Display` text.
    pub fn code(&self) -> String {
        match self {
            MoodleError::Moodle { errorcode, .. } => stable_code(errorcode).into(),
            MoodleError::Transport { .. } => "transport".into(),
            MoodleError::Http { status, .. } => format!("http_{status}"),
            MoodleError::BadResponse { .. } => "bad_response".into(),
            MoodleError::CountMismatch { .. } => "count_mismatch".into(),
            MoodleError::InvalidInput { .. } => "invalid_input".into(),
            MoodleError::Config(_) => "config".into(),
        }
    }

    /// The Moodle `errorcode`, if Moodle answered with an exception.
    pub fn errorcode(&self) -> Option<&str> {
        match self {
            MoodleError::Moodle { errorcode, .. } => Some(errorcode),
            _ => None,
        }
    }

    /// What a person should do about it (the same text the `Display` output ends with).
    pub fn advice(&self) -> String {
        match self {
            MoodleError::Moodle {
                function,
                errorcode,
                message,
                ..
            } => advice(function, errorcode, message),
            MoodleError::Http { status, .. } => http_advice(*status).to_string(),
            MoodleError::Transport { .. } => {
                "check that MOODLE_URL is reachable from this server; the call will be retried"
                    .into()
            }
            other => other.to_string(),
        }
    }

    /// The same error with every occurrence of `secret` (plain or encoded, see
    /// [`Secret::scrub`]) removed from the text it carries. Applied to every error built from
    /// what a server answered, since a server or proxy may echo the token back.
    pub fn redact(self, secret: &Secret) -> Self {
        // Scrub first, then bound: a hostile server must not push megabytes into logs and the
        // saga's recorded failures.
        let s = |text: String| bounded(secret.scrub(&text));
        match self {
            MoodleError::Moodle {
                function,
                errorcode,
                message,
                class,
            } => MoodleError::Moodle {
                function: s(function),
                errorcode: s(errorcode),
                message: s(message),
                class,
            },
            MoodleError::Transport {
                function,
                detail,
                outcome_unknown,
            } => MoodleError::Transport {
                function: s(function),
                detail: s(detail),
                outcome_unknown,
            },
            MoodleError::Http { function, status } => MoodleError::Http {
                function: s(function),
                status,
            },
            MoodleError::BadResponse {
                function,
                detail,
                transient,
            } => MoodleError::BadResponse {
                function: s(function),
                detail: s(detail),
                transient,
            },
            MoodleError::CountMismatch {
                function,
                sent,
                returned,
            } => MoodleError::CountMismatch {
                function: s(function),
                sent,
                returned,
            },
            MoodleError::InvalidInput { function, detail } => MoodleError::InvalidInput {
                function: s(function),
                detail: s(detail),
            },
            MoodleError::Config(c) => MoodleError::Config(c),
        }
    }
}

/// The label [`MoodleError::code`] gives a Moodle errorcode.
fn stable_code(errorcode: &str) -> &str {
    let code = errorcode.trim();
    if code.is_empty() {
        "unknown"
    } else if code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        code
    } else {
        "other"
    }
}

/// Person-actionable advice for a Moodle errorcode.
/// Longest text an error keeps from Moodle's answer (characters).
pub const MAX_ERROR_TEXT: usize = 2000;

/// `text`, cut to [`MAX_ERROR_TEXT`] characters with a marker when longer.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        None => text,
        Some((cut, _)) => format!("{}… [{} more bytes]", &text[..cut], text.len() - cut),
    }
}

fn advice(function: &str, errorcode: &str, message: &str) -> String {
    match errorcode {
        "invalidtoken" => "the token is unknown to Moodle: check MOODLE_TOKEN (tokens are invalidated when the web-service user's password changes)".into(),
        "accessexception" => format!("the function {function} is not in the token's external service, or the token expired / the web-service user lacks webservice/rest:use (Site administration > Server > Web services > External services)"),
        "invalidrecord" if message.contains("external_functions") => format!("the function {function} does not exist on this Moodle: the site is too old for this engine"),
        "invalidrecord" => "a Moodle record (course, category or user) does not exist: it may have been deleted in Moodle; for a missing function the Moodle release is too old".into(),
        "wsusercannotassign" => "allow the web-service user's role to assign the configured roles (Site administration > Users > Define roles > Allow role assignments) and check MOODLE_INSTRUCTOR_ROLE_ID / MOODLE_STUDENT_ROLE_ID".into(),
        "wsnoinstance" => "the course has no enabled manual enrolment: enable the manual enrolment plugin and its \"Add instance to new courses\" setting, or add it to the course".into(),
        "setting_locked_by_permission" => "the web-service user lacks moodle/backup:userinfo for the duplication options sent".into(),
        "shortnametaken" => "a course with this short name already exists: look it up and reuse it".into(),
        "invalidparameter" => "Moodle refused a value (bad email, username not lowercase, user or email already exists, course missing); enable site debugging to see which".into(),
        "nopermissions" | "requireloginerror" | "errorcoursecontextnotvalid" => "the web-service user lacks a capability (see the capabilities list in the engine's Moodle setup guide), e.g. moodle/course:view and viewhiddencourses".into(),
        "codingerror" => "Moodle rejected the call as malformed, e.g. a user id that no longer exists (deleted in Moodle)".into(),
        "invalidcourseid" => "the course does not exist in Moodle (check the template course id)".into(),
        "ex_unabletolock" | "dmlwriteexception" | "dmlreadexception" => "Moodle was busy; the call will be retried".into(),
        "sitemaintenance" => "Moodle is in maintenance mode; the call will be retried".into(),
        _ => "see the Moodle errorcode; enable site debugging for details".into(),
    }
}

fn http_advice(status: u16) -> &'static str {
    match status {
        300..=399 => "MOODLE_URL redirects (e.g. http to https, or the site moved): set MOODLE_URL to the final address (the site's wwwroot); redirects are not followed so that the token is never sent elsewhere",
        403 => "web services or the REST protocol are disabled in Moodle (Site administration > Advanced features > Enable web services; Server > Web services > Manage protocols > REST)",
        404 => "MOODLE_URL does not point at a Moodle site (the client posts to {url}/webservice/rest/server.php)",
        _ => "unexpected HTTP status from Moodle or a proxy in front of it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moodle(code: &str) -> MoodleError {
        MoodleError::Moodle {
            function: "f".into(),
            errorcode: code.into(),
            message: "m".into(),
            class: ErrorClass::of(code),
        }
    }

    #[test]
    fn long_texts_are_bounded() {
        let long = "é".repeat(MAX_ERROR_TEXT + 10);
        let cut = bounded(long);
        assert!(cut.starts_with(&"é".repeat(MAX_ERROR_TEXT)));
        assert!(cut.ends_with("[20 more bytes]"), "{cut}");
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn classification() {
        for c in ["ex_unabletolock", "dmlwriteexception", "sitemaintenance"] {
            assert!(moodle(c).is_transient(), "{c}");
        }
        for c in [
            "invalidtoken",
            "accessexception",
            "invalidparameter",
            "wsusercannotassign",
            "shortnametaken",
            "nopermissions",
            "requireloginerror",
            "codingerror",
            "invalidrecord",
            "wsnoinstance",
            "something-new",
        ] {
            assert!(!moodle(c).is_transient(), "{c}");
            assert!(!moodle(c).outcome_unknown(), "{c}");
        }
        let t = MoodleError::Transport {
            function: "f".into(),
            detail: "d".into(),
            outcome_unknown: true,
        };
        assert!(t.is_transient() && t.outcome_unknown());
        assert_eq!(t.code(), "transport");
        let h = MoodleError::Http {
            function: "f".into(),
            status: 403,
        };
        assert!(!h.is_transient());
        assert_eq!(h.code(), "http_403");
        assert!(h.to_string().contains("REST"));
    }

    #[test]
    fn advice_is_actionable() {
        assert!(moodle("invalidtoken").to_string().contains("MOODLE_TOKEN"));
        let a = MoodleError::Moodle {
            function: "core_course_delete_courses".into(),
            errorcode: "accessexception".into(),
            message: "Access control exception".into(),
            class: ErrorClass::Permanent,
        };
        assert!(a
            .to_string()
            .contains("core_course_delete_courses is not in the token's external service"));
        assert!(moodle("wsnoinstance").advice().contains("manual enrolment"));
        assert!(moodle("wsusercannotassign")
            .advice()
            .contains("role assignments"));
        assert!(moodle("setting_locked_by_permission")
            .advice()
            .contains("moodle/backup:userinfo"));
        assert!(moodle("invalidrecord").advice().contains("does not exist"));
        let missing = MoodleError::Moodle {
            function: "core_course_search_courses".into(),
            errorcode: "invalidrecord".into(),
            message: "Can't find data record in database table external_functions.".into(),
            class: ErrorClass::Permanent,
        };
        assert!(missing.advice().contains("too old"));
    }

    #[test]
    fn code_is_bounded_and_never_empty() {
        assert_eq!(moodle("invalidtoken").code(), "invalidtoken");
        assert_eq!(moodle("ex_unabletolock").code(), "ex_unabletolock");
        assert_eq!(moodle(" dmlwriteexception\n").code(), "dmlwriteexception");
        assert!(moodle(" dmlwriteexception\n").is_transient());
        for blank in ["", " ", "\t\n"] {
            assert_eq!(moodle(blank).code(), "unknown", "{blank:?}");
        }
        let long = "a".repeat(MAX_CODE_LEN + 1);
        for odd in [
            "<div>Passwords must be at least 8 characters long.</div>",
            "Invalid",
            "some-code",
            "code\u{0}",
            "é",
            long.as_str(),
        ] {
            let e = moodle(odd);
            assert_eq!(e.code(), "other", "{odd:?}");
            // The raw errorcode stays available to people.
            assert_eq!(e.errorcode(), Some(odd));
            assert!(e.to_string().contains(odd), "{e}");
        }
        assert_eq!(
            moodle(&"a".repeat(MAX_CODE_LEN)).code(),
            "a".repeat(MAX_CODE_LEN)
        );
    }

    #[test]
    fn redirects_are_permanent_and_explained() {
        for status in [301, 302, 303, 307, 308] {
            let e = MoodleError::Http {
                function: "f".into(),
                status,
            };
            assert!(!e.is_transient(), "{status}");
            assert!(!e.outcome_unknown(), "{status}");
            assert_eq!(e.code(), format!("http_{status}"));
            assert!(e.advice().contains("MOODLE_URL redirects"), "{e}");
            assert!(e.to_string().contains("final address"), "{e}");
        }
    }

    #[test]
    fn redact_scrubs_every_text_field() {
        let secret = Secret::new("tok3n-5ecret");
        let errors = [
            MoodleError::Moodle {
                function: "f".into(),
                errorcode: "tok3n-5ecret".into(),
                message: "Invalid token tok3n%2D5ecret".into(),
                class: ErrorClass::Permanent,
            },
            MoodleError::Transport {
                function: "f".into(),
                detail: "reset after wstoken=tok3n-5ecret".into(),
                outcome_unknown: true,
            },
            MoodleError::BadResponse {
                function: "f".into(),
                detail: "invalid type: string \"tok3n-5ecret\", expected i64".into(),
                transient: false,
            },
            MoodleError::InvalidInput {
                function: "f".into(),
                detail: "tok3n-5ecret".into(),
            },
        ];
        for e in errors {
            let before = format!("{e:?}");
            let e = e.redact(&secret);
            let printed = format!("{e}\n{e:?}\n{}\n{}", e.advice(), e.code());
            assert!(!printed.contains("5ecret"), "{printed}");
            assert!(printed.contains("[redacted]"), "{before} -> {printed}");
        }
        let kept = moodle("invalidtoken").redact(&secret);
        assert_eq!(kept.errorcode(), Some("invalidtoken"));
        assert!(!kept.is_transient());
    }
}
