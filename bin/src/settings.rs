//! One settings source for every command: clap reads each setting from its flag or its
//! environment variable (the flag wins), `MOODLE_*` exactly like the rest, and the values are
//! typed once, here, at start-up, by the crates' own parsers. Commands receive a [`Settings`]
//! and never read the environment themselves (a setting read deep inside a crate is one that a
//! flag cannot reach, which is how `--moodle MOODLE_RECONCILE_INTERVAL=…` was once ignored).
//!
//! Every `MOODLE_*` setting is listed once, in [`MOODLE`]: it becomes a flag (`--moodle-url`
//! for `MOODLE_URL`) reading its variable, and a key of the older `--moodle MOODLE_URL=…` form,
//! which stays accepted; a key outside the list is refused instead of silently ignored.

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

use crate::cli::Global;

/// One `MOODLE_*` setting: its variable and its help line.
pub struct MoodleVar {
    pub var: &'static str,
    pub help: &'static str,
    /// The value never appears in help output (the token).
    pub secret: bool,
}

const fn var(var: &'static str, help: &'static str) -> MoodleVar {
    MoodleVar {
        var,
        help,
        secret: false,
    }
}

/// Every `MOODLE_*` setting (docs/operations.md describes each one).
pub const MOODLE: &[MoodleVar] = &[
    var(
        "MOODLE_ENABLED",
        "Switch the Moodle integration on (default false)",
    ),
    var("MOODLE_URL", "The Moodle site's wwwroot, https://…"),
    MoodleVar {
        var: "MOODLE_TOKEN",
        help: "The web-service token (prefer the variable: a flag shows in the process list)",
        secret: true,
    },
    var(
        "MOODLE_COURSE_CATEGORY_ID",
        "Category of the events' courses",
    ),
    var(
        "MOODLE_COURSE_FULLNAME_TEMPLATE",
        "Full name of an event's course, where its environment does not say (default {event_name})",
    ),
    var(
        "MOODLE_COURSE_SHORTNAME_TEMPLATE",
        "Shortname of an event's course (default {event_name} ({event_short_id}))",
    ),
    var(
        "MOODLE_COURSE_IDNUMBER_TEMPLATE",
        "Idnumber of an event's course, how the engine finds its own course again (default ovle-{event_id})",
    ),
    var(
        "MOODLE_COURSE_VISIBILITY",
        "Visibility of a new course: visible (default), hidden, or at_start (hidden until the event starts)",
    ),
    var(
        "MOODLE_ARCHIVE_CATEGORY_ID",
        "Category an ended event's course moves to (default: none, it stays)",
    ),
    var(
        "MOODLE_USER_MATCH_FIELD",
        "Account field that identifies a participant: email (default), username or idnumber",
    ),
    var(
        "MOODLE_DELETE_COURSE_ON_EVENT_DELETE",
        "Delete the course when its event is deleted (default false: kept, hidden)",
    ),
    var(
        "MOODLE_INSTRUCTOR_ROLE_ID",
        "Role id of instructors (default 3)",
    ),
    var("MOODLE_STUDENT_ROLE_ID", "Role id of students (default 5)"),
    var(
        "MOODLE_REMOVAL_MODE",
        "What removing a participant does: unenrol (default) or suspend",
    ),
    var(
        "MOODLE_NEW_USER_AUTH",
        "Auth plugin of new accounts (default manual)",
    ),
    var(
        "MOODLE_NEW_USER_PASSWORD",
        "New accounts' password: email (Moodle makes and mails one, default) or none (single sign-on)",
    ),
    var(
        "MOODLE_USERNAME_SOURCE",
        "New accounts' username: username (the participant's, else the email's local part; default), email or email_local_part",
    ),
    var(
        "MOODLE_USERNAME_COLLISION",
        "A derived username another account holds: suffix (default) or park",
    ),
    var(
        "MOODLE_UPDATE_ACCOUNTS",
        "Write a participant's changed name, email or idnumber to their Moodle account (default false)",
    ),
    var(
        "MOODLE_ALLOW_INSECURE_HTTP",
        "Accept an http:// MOODLE_URL (a local test site only)",
    ),
    var("MOODLE_TIMEOUT_SECS", "Timeout of one call (default 30)"),
    var(
        "MOODLE_DUPLICATE_TIMEOUT_SECS",
        "Timeout of one course duplication (default 600)",
    ),
    var(
        "MOODLE_CONNECT_TIMEOUT_SECS",
        "Connect timeout (default 10)",
    ),
    var(
        "MOODLE_MAX_INPUT_VARS",
        "The site's PHP max_input_vars, when it is not the default 1000",
    ),
    var(
        "MOODLE_RECONCILE_INTERVAL",
        "Seconds between scheduled reconciles (unset or 0: none)",
    ),
    var(
        "MOODLE_RECONCILE_APPLY",
        "Scheduled reconciles fix the drift instead of only reporting it",
    ),
];

/// `MOODLE_COURSE_CATEGORY_ID` → `moodle-course-category-id`.
pub fn flag_of(var: &str) -> String {
    var.to_ascii_lowercase().replace('_', "-")
}

/// The `MOODLE_*` flags, added to the command line built from [`crate::cli::Cli`].
pub fn moodle_args() -> Vec<Arg> {
    MOODLE
        .iter()
        .map(|m| {
            Arg::new(m.var)
                .long(flag_of(m.var))
                .env(m.var)
                .value_name("VALUE")
                .help(m.help)
                .hide_env_values(m.secret)
                .global(true)
                .help_heading("Moodle (each flag reads the variable named)")
        })
        .collect()
}

/// The settings every command runs with, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// DATABASE_URL, or the default SQLite file.
    pub database_url: String,
    /// Every `MOODLE_*` setting but the reconcile schedule (`Debug` hides the token).
    pub moodle: moodle::MoodleSettings,
    /// The scheduled reconcile, None when off.
    pub reconcile: Option<saga::ReconcileSchedule>,
}

impl Settings {
    /// Types what clap found; an invalid value is an error naming its variable.
    pub fn from_matches(global: &Global, matches: &ArgMatches) -> anyhow::Result<Settings> {
        let legacy = legacy_pairs(&global.moodle)?;
        let lookup = |name: &str| -> Option<String> {
            let from_flag = matches.value_source(name) == Some(ValueSource::CommandLine);
            let value = matches.get_one::<String>(name).cloned();
            if from_flag {
                return value;
            }
            legacy
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or(value)
        };
        let settings = Self::from_lookup(global.database_url(), lookup)?;
        if let Some(token) = &settings.moodle.token {
            let (flag, source) =
                if matches.value_source("MOODLE_TOKEN") == Some(ValueSource::CommandLine) {
                    ("--moodle-token", Some(ValueSource::CommandLine))
                } else if legacy.iter().any(|(k, _)| k == "MOODLE_TOKEN") {
                    ("--moodle MOODLE_TOKEN=…", Some(ValueSource::CommandLine))
                } else {
                    ("--moodle-token", matches.value_source("MOODLE_TOKEN"))
                };
            crate::secrets::check_token("MOODLE_TOKEN", flag, token.expose(), source)?;
        }
        Ok(settings)
    }

    /// Types settings given as (variable → value): for the demo and the benchmarks, which
    /// choose their own.
    pub fn from_lookup(
        database_url: String,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let moodle =
            moodle::MoodleSettings::from_lookup(&lookup).context("Moodle configuration")?;
        let reconcile =
            saga::ReconcileSchedule::from_lookup(&lookup).context("Moodle configuration")?;
        Ok(Settings {
            database_url,
            moodle,
            reconcile,
        })
    }

    /// The saga's (and the views') settings: the one translation of the Moodle settings.
    pub fn saga(&self) -> saga::SagaSettings {
        self.moodle.saga()
    }
}

/// `--moodle MOODLE_VAR=VALUE` pairs, each key one of [`MOODLE`].
fn legacy_pairs(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--moodle {pair:?}: expected MOODLE_VAR=VALUE"))?;
            let key = key.trim();
            if !MOODLE.iter().any(|m| m.var == key) {
                let known: Vec<&str> = MOODLE.iter().map(|m| m.var).collect();
                anyhow::bail!(
                    "--moodle {key}: not a Moodle setting; the settings are {}",
                    known.join(", ")
                );
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let argv = std::iter::once("openvle-moodle").chain(args.iter().copied());
        let matches = crate::cli::Cli::command()
            .args(moodle_args())
            .try_get_matches_from(argv)?;
        let cli = crate::cli::Cli::from_arg_matches(&matches)?;
        Settings::from_matches(&cli.global, &matches)
    }

    #[test]
    fn every_moodle_setting_has_a_flag_and_the_old_form() {
        let s = parse(&["--moodle-student-role-id", "7", "status"]).unwrap();
        assert_eq!(s.moodle.student_role_id, 7);
        let s = parse(&["--moodle", "MOODLE_STUDENT_ROLE_ID=8", "status"]).unwrap();
        assert_eq!(s.moodle.student_role_id, 8);
        // The flag wins over the older form.
        let s = parse(&[
            "--moodle",
            "MOODLE_STUDENT_ROLE_ID=8",
            "--moodle-student-role-id=9",
            "status",
        ])
        .unwrap();
        assert_eq!(s.moodle.student_role_id, 9);
    }

    #[test]
    fn the_reconcile_schedule_comes_from_the_same_source() {
        let s = parse(&["--moodle", "MOODLE_RECONCILE_INTERVAL=60", "serve"]).unwrap();
        let r = s.reconcile.expect("a schedule");
        assert_eq!(r.interval, std::time::Duration::from_secs(60));
        assert!(!r.apply);
        let s = parse(&[
            "--moodle-reconcile-interval=5",
            "--moodle-reconcile-apply=true",
            "worker",
        ])
        .unwrap();
        assert!(s.reconcile.expect("a schedule").apply);
        let e = parse(&["--moodle-reconcile-interval=soon", "worker"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("MOODLE_RECONCILE_INTERVAL"),
            "{e:#}"
        );
    }

    #[test]
    fn unknown_and_malformed_settings_are_refused_by_name() {
        let e = parse(&["--moodle", "MOODLE_RECONCILE_EVERY=60", "serve"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("MOODLE_RECONCILE_EVERY: not a Moodle setting"),
            "{e:#}"
        );
        let e = parse(&["--moodle", "nonsense", "serve"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("expected MOODLE_VAR=VALUE"),
            "{e:#}"
        );
        let e = parse(&["--moodle-student-role-id=x", "status"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("MOODLE_STUDENT_ROLE_ID: expected a positive integer"),
            "{e:#}"
        );
    }

    #[test]
    fn the_token_never_shows() {
        let s = parse(&[
            "--moodle-enabled=true",
            "--moodle-url=https://m.example.org",
            "--moodle-token=sekrit-token-value",
            "--moodle-course-category-id=3",
            "status",
        ])
        .unwrap();
        assert!(s.moodle.enabled);
        assert!(!format!("{s:?}").contains("sekrit-token-value"));
        let help = crate::cli::Cli::command()
            .args(moodle_args())
            .render_long_help()
            .to_string();
        assert!(help.contains("--moodle-reconcile-interval"), "{help}");
    }

    #[test]
    fn api_tokens_never_show_in_debug_output() {
        let matches = crate::cli::Cli::command()
            .args(moodle_args())
            .try_get_matches_from([
                "openvle-moodle",
                "serve",
                "--api-token",
                "writer-sekrit",
                "--audit-token",
                "auditor-sekrit",
            ])
            .unwrap();
        let cli = crate::cli::Cli::from_arg_matches(&matches).unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("sekrit"), "{debug}");
        match cli.command {
            crate::cli::Command::Serve(args) => {
                assert_eq!(args.api_token.unwrap().expose(), "writer-sekrit")
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
