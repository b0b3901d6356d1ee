//! Typed Moodle errors and their classification.
//!
//! Moodle answers HTTP 200 for errors and localises `message`, so classification looks at
//! `errorcode` only, never at the `exception` class (which 5.1 renamed). Three questions matter
//! to callers: may a retry help ([`MoodleError::is_transient`]), may the call have taken effect
//! ([`MoodleError::outcome_unknown`], e.g. a timeout after the request was sent: look the object
//! up before retrying), and what did Moodle refuse ([`MoodleError::refusal`], the same on 4.4
//! and 5.1: see [`refusal`]).
//!
//! This file holds the error type; [`refusal`] what an exception means and the advice for it;
//! `tests.rs` the classification of every body observed on both releases.

pub mod refusal;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod warned_tests;

use crate::config::ConfigError;
use crate::secret::Secret;
use crate::types::Warning;
pub use refusal::Refusal;

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
    ///
    /// `storedfilenotcreated` is transient: two duplications of one template whose backups
    /// overlap clash on the template's one backup file name (seen on the lab, 1 in 18 with six
    /// at a time), and the failed one leaves nothing behind.
    pub fn of(errorcode: &str) -> Self {
        match errorcode.trim() {
            "ex_unabletolock"
            | "dmlwriteexception"
            | "dmlreadexception"
            | "sitemaintenance"
            | "storedfilenotcreated" => ErrorClass::Transient,
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
        refusal::advice(function, errorcode, message)
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
    /// Moodle answered the call but refused some items with warnings (`external_warnings`);
    /// the other items took effect, each in its own transaction (`core_user_update_users`).
    /// Classified by the first warning's code, as an exception with that errorcode would be:
    /// an unknown user id (`invaliduserid`) is [`Refusal::MissingUser`], an email another
    /// account holds (`useremailduplicate`) [`Refusal::EmailTaken`].
    #[error(
        "Moodle {function}: {} item(s) refused, first {} {}: {} ({}); {}",
        warnings.len(),
        first(warnings).item.as_deref().unwrap_or("item"),
        first(warnings).itemid.unwrap_or_default(),
        first(warnings).warningcode,
        first(warnings).message,
        refusal::advice(function, &first(warnings).warningcode, &first(warnings).message)
    )]
    Warned {
        /// The `wsfunction` called.
        function: String,
        /// Every warning of the call, in Moodle's order (never empty).
        warnings: Vec<Warning>,
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
            MoodleError::Warned { .. }
            | MoodleError::CountMismatch { .. }
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
            MoodleError::Warned { warnings, .. } => {
                stable_code(&first(warnings).warningcode).into()
            }
            MoodleError::Transport { .. } => "transport".into(),
            MoodleError::Http { status, .. } => format!("http_{status}"),
            MoodleError::BadResponse { .. } => "bad_response".into(),
            MoodleError::CountMismatch { .. } => "count_mismatch".into(),
            MoodleError::InvalidInput { .. } => "invalid_input".into(),
            MoodleError::Config(_) => "config".into(),
        }
    }

    /// The Moodle `errorcode`, if Moodle answered with an exception (or the first warning's
    /// code, if it refused items with warnings).
    pub fn errorcode(&self) -> Option<&str> {
        match self {
            MoodleError::Moodle { errorcode, .. } => Some(errorcode),
            MoodleError::Warned { warnings, .. } => {
                warnings.first().map(|w| w.warningcode.as_str())
            }
            _ => None,
        }
    }

    /// What Moodle refused, if it answered with an exception: the same meaning whichever
    /// release answered (see [`Refusal::classify`]).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            MoodleError::Moodle {
                function,
                errorcode,
                message,
                ..
            } => Some(Refusal::classify(function, errorcode, message)),
            MoodleError::Warned {
                function, warnings, ..
            } => {
                let w = first(warnings);
                Some(Refusal::classify(function, &w.warningcode, &w.message))
            }
            _ => None,
        }
    }

    /// The warnings of a call that refused some items ([`MoodleError::Warned`]); empty otherwise.
    pub fn warnings(&self) -> &[Warning] {
        match self {
            MoodleError::Warned { warnings, .. } => warnings,
            _ => &[],
        }
    }

    /// Moodle said a course, category, user or other record asked for does not exist
    /// (4.4's `invalidrecord`, `invalidcourseid` and enrol's `codingerror`, 5.1's
    /// `invalidrecordunknown`). A function that does not exist is not a missing record.
    pub fn is_missing_record(&self) -> bool {
        self.refusal().is_some_and(Refusal::is_missing_record)
    }

    /// Moodle said a course asked for does not exist.
    pub fn is_missing_course(&self) -> bool {
        self.refusal() == Some(Refusal::MissingCourse)
    }

    /// Moodle said a user id to enrol does not exist (deleted in Moodle: the link is stale).
    pub fn is_missing_user(&self) -> bool {
        self.refusal() == Some(Refusal::MissingUser)
    }

    /// Moodle said the function called does not exist on the site.
    pub fn is_unknown_function(&self) -> bool {
        self.refusal() == Some(Refusal::UnknownFunction)
    }

    /// A refusal of a whole batch that one item may cause on its own (a value Moodle refused,
    /// a user that does not exist, a password-policy failure, or input refused locally): split
    /// the batch to find it. Anything else concerns every item.
    pub fn is_item_refusal(&self) -> bool {
        match self {
            MoodleError::InvalidInput { .. } => true,
            _ => self.refusal().is_some_and(Refusal::is_item_specific),
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
            } => refusal::advice(function, errorcode, message),
            MoodleError::Warned { function, warnings } => {
                let w = first(warnings);
                refusal::advice(function, &w.warningcode, &w.message)
            }
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
            MoodleError::Warned { function, warnings } => MoodleError::Warned {
                function: s(function),
                warnings: warnings
                    .into_iter()
                    .map(|w| Warning {
                        item: w.item.map(s),
                        itemid: w.itemid,
                        warningcode: s(w.warningcode),
                        message: s(w.message),
                    })
                    .collect(),
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

/// The first warning of a [`MoodleError::Warned`] (a placeholder should one be built empty).
fn first(warnings: &[Warning]) -> std::borrow::Cow<'_, Warning> {
    match warnings.first() {
        Some(w) => std::borrow::Cow::Borrowed(w),
        None => std::borrow::Cow::Owned(Warning {
            item: None,
            itemid: None,
            warningcode: "unknown".into(),
            message: String::new(),
        }),
    }
}

/// The label [`MoodleError::code`] gives a Moodle errorcode.
fn stable_code(errorcode: &str) -> &str {
    let code = errorcode.trim();
    if code.is_empty() {
        "unknown"
    } else if is_plain_code(code) {
        code
    } else {
        "other"
    }
}

/// 1 to [`MAX_CODE_LEN`] characters of `[a-z0-9_]`: an errorcode rather than free text.
fn is_plain_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Longest text an error keeps from Moodle's answer (characters).
pub const MAX_ERROR_TEXT: usize = 2000;

/// `text`, cut to [`MAX_ERROR_TEXT`] characters with a marker when longer.
pub(crate) fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        None => text,
        Some((cut, _)) => format!("{}… [{} more bytes]", &text[..cut], text.len() - cut),
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
