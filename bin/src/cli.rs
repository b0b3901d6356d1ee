//! The command line: every operator action is a subcommand; shared settings come from flags or
//! the environment (flags win), and a missing or malformed value stops start-up naming it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::settings;

/// The subcommands that use the Moodle settings (they talk to Moodle, or fold its state): only
/// they show the `--moodle-*` flags. The older place of those flags, before the subcommand, is
/// still accepted for every subcommand (hidden), so command lines written for it keep working.
pub const MOODLE_COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["worker"],
    &["reconcile"],
    &["replay"],
    &["moodle", "check"],
];

/// The whole command line: [`Cli`] with the `MOODLE_*` flags of [`settings::MOODLE`] on the
/// subcommands that use them, and the settings listed in the top help.
pub fn command() -> clap::Command {
    let hidden = settings::moodle_args().into_iter().map(|a| a.hide(true));
    let mut cmd = Cli::command()
        .args(hidden)
        .after_help(moodle_settings_help());
    for path in MOODLE_COMMANDS {
        cmd = with_moodle_flags(cmd, path);
    }
    // The demo and the simulator keep their own state (`--database`, `--persist`): the global
    // `--database-url` is hidden there (and still accepted, ignored, as it always was).
    for name in ["demo", "moodle-sim"] {
        cmd = cmd.mut_subcommand(name, |c| {
            c.arg(
                clap::Arg::new("database_url")
                    .long("database-url")
                    .env("DATABASE_URL")
                    .help("Not used: this subcommand keeps its own state")
                    .hide(true),
            )
        });
    }
    cmd
}

/// A subcommand's own copy of the flags, under the same ids as the hidden global ones: clap then
/// does not propagate those there, and merges the values of both places (the later wins).
fn with_moodle_flags(cmd: clap::Command, path: &[&str]) -> clap::Command {
    match path {
        [] => cmd.args(settings::moodle_args().into_iter().map(|a| a.global(false))),
        [first, rest @ ..] => cmd.mut_subcommand(*first, |c| with_moodle_flags(c, rest)),
    }
}

/// The `MOODLE_*` settings, for the top help: which variable, what it does.
pub fn moodle_settings_help() -> String {
    let width = settings::MOODLE
        .iter()
        .map(|m| m.var.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "Moodle settings (environment variables; flags `--moodle-…` of serve, worker, reconcile, \
         replay and moodle check):\n",
    );
    for m in settings::MOODLE {
        out.push_str(&format!("  {:width$}  {}\n", m.var, m.help));
    }
    out.push_str(&format!(
        "Secrets may be given as VAR_FILE (a path to a file holding the value): {}.",
        crate::secrets::FILE_VARS.join(", ")
    ));
    out
}

#[derive(Debug, Parser)]
#[command(
    name = "openvle-moodle",
    version,
    about = "Keeps Moodle in step with OpenVLE events, through an event-sourced log."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Event store: `sqlite://file.db` (default `sqlite://openvle-moodle.db`) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,saga=debug` (default `info`; `demo`
    /// logs only errors unless this is set).
    #[arg(long, env = "OPENVLE_LOG", global = true)]
    pub log: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "OPENVLE_LOG_JSON", global = true)]
    pub log_json: bool,
    /// Moodle settings as flags: `--moodle KEY=VALUE` (e.g. `--moodle MOODLE_ENABLED=true`);
    /// they override the `MOODLE_*` environment variables of the same name. The older form of
    /// `--moodle-*`: still accepted anywhere, shown nowhere.
    #[arg(
        long = "moodle",
        value_name = "MOODLE_VAR=VALUE",
        global = true,
        hide = true
    )]
    pub moodle: Vec<String>,
}

impl Global {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "sqlite://openvle-moodle.db".to_string())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run a Moodle worker in the same process.
    Serve(ServeArgs),
    /// Run a Moodle worker only (several may share one PostgreSQL store).
    Worker(WorkerArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Audit the log: verify the hash chain, export it, or tell one event's story.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Talk to the configured Moodle.
    #[command(subcommand)]
    Moodle(MoodleCommand),
    /// Run the built-in Moodle simulator (for demos and tests).
    MoodleSim(SimArgs),
    /// Saga lag, events in flight, parked events and the last Moodle error.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The webhooks' outbox: its status, and sending dead messages again (docs/webhooks.md).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Resume a parked event's Moodle saga, or every parked one (`--all`, `--code`).
    Retry {
        /// The OpenVLE event id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        event_id: Option<String>,
        /// Resume every parked event (and every event with a parked participant).
        #[arg(long)]
        all: bool,
        /// With --all: only those parked with this code (e.g. `wsnoinstance`, `unknown_category`).
        #[arg(long, requires = "all")]
        code: Option<String>,
        /// Retry only this parked participant of the event (the rest stays as it is).
        #[arg(long, requires = "event_id")]
        participant: Option<String>,
    },
    /// Compare Moodle with what the log says, print the difference, and with `--apply` converge
    /// Moodle through the saga (each correction recorded as a saga event).
    Reconcile {
        /// Only this OpenVLE event (default: every event with a Moodle side).
        #[arg(long)]
        event: Option<String>,
        /// Fix the drift (without it nothing is changed, in Moodle or in the log).
        #[arg(long)]
        apply: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild every read model from position 0 (no Moodle call), then swap it in.
    Replay(crate::cmd::replay::ReplayArgs),
    /// Start the simulator and the engine on the embedded defaults and run one event through
    /// its whole life, then print its story.
    Demo(DemoArgs),
    /// Print the shell completions of this command line (the Debian package installs them).
    #[command(hide = true)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page of this command line, in roff (the Debian package installs it).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OPENVLE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Writer token (may do everything).
    #[arg(long, env = "OPENVLE_API_TOKEN", hide_env_values = true, value_parser = token)]
    pub api_token: Option<api::Token>,
    /// Auditor token (may only read).
    #[arg(long, env = "OPENVLE_AUDIT_TOKEN", hide_env_values = true, value_parser = token)]
    pub audit_token: Option<api::Token>,
    /// Do not run a worker in this process.
    #[arg(long)]
    pub no_worker: bool,
    /// Seconds for a request's head to arrive; also how long a kept-alive connection may stay
    /// idle between requests (one timer in hyper). Then the connection is closed.
    #[arg(long, env = "OPENVLE_HTTP_HEADER_TIMEOUT_SECS", default_value_t = api::HEADER_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_secs: u64,
    /// Seconds for a request's whole body to arrive, counted from its head (then 408
    /// `request_timeout` and the connection is closed).
    #[arg(long, env = "OPENVLE_HTTP_BODY_TIMEOUT_SECS", default_value_t = api::BODY_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog until one ends. Keep it well
    /// below the process's open-file limit (`ulimit -n`, 1024 under systemd by default).
    #[arg(long, env = "OPENVLE_HTTP_MAX_CONNECTIONS", default_value_t = api::MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub http_max_connections: u64,
    /// Seconds between preflights of Moodle (`moodle check`, run once at start-up): their
    /// verdict is in GET /api/v1/status and the openvle_moodle_check_* metrics, and logged
    /// when it changes. 0: at start-up only.
    #[arg(
        long,
        env = "OPENVLE_MOODLE_CHECK_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub moodle_check_interval_secs: u64,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// The signed webhooks `serve` sends (docs/webhooks.md); off while OPENVLE_WEBHOOK_URL is unset.
#[derive(Debug, Args, Clone)]
pub struct WebhookArgs {
    /// Receiver of the webhooks: https://…, or http:// to a loopback address (unset: none sent).
    #[arg(long, env = "OPENVLE_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Signing secret, whsec_<base64 key> (Standard Webhooks); prefer the variable or
    /// OPENVLE_WEBHOOK_SECRET_FILE: a flag shows in the process list.
    #[arg(long, env = "OPENVLE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub webhook_secret: Option<moodle::Secret>,
    /// Seconds one delivery attempt may take (connect, send, answer).
    #[arg(long, env = "OPENVLE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub webhook_timeout_secs: u64,
    /// OpenVLE events whose messages are sent at once (each event's in order).
    #[arg(long, env = "OPENVLE_WEBHOOK_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub webhook_concurrency: u64,
    /// First retry delay after a failed delivery, in milliseconds (doubled per attempt, with
    /// jitter).
    #[arg(long, env = "OPENVLE_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "OPENVLE_WEBHOOK_RETRY_MAX_MS", default_value_t = 900_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_max_ms: u64,
    /// Failed attempts after which a message is dead (0: no limit but the age).
    #[arg(long, env = "OPENVLE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 0)]
    pub webhook_max_attempts: u32,
    /// Seconds after which a message still not delivered is dead (default 3 days).
    #[arg(long, env = "OPENVLE_WEBHOOK_MAX_AGE_SECS", default_value_t = 259_200,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_max_age_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The outbox: lag, pending and dead messages, the last failed delivery.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send dead messages again, with their ids (every one, or one event's, or one message).
    Redeliver {
        /// Only the dead messages of this OpenVLE event.
        #[arg(long)]
        event: Option<String>,
        /// Only this message (its webhook-id, msg_…).
        #[arg(long)]
        message: Option<String>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// OpenVLE events processed at once.
    #[arg(long, env = "OPENVLE_SAGA_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// Course duplications run at once by this process (Moodle's concurrent backups and restores
    /// collide and can leave a half-made course; raise with care).
    #[arg(long, env = "OPENVLE_SAGA_MAX_DUPLICATIONS", default_value_t = 1)]
    pub max_duplications: usize,
    /// Name of this worker in claims and logs (default: host and process id). A restarted
    /// worker with the same name takes its claims back at once instead of waiting for the lease.
    #[arg(long, env = "OPENVLE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// First retry delay after a transient Moodle failure, in milliseconds (doubled per attempt,
    /// with jitter).
    #[arg(long, env = "OPENVLE_SAGA_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "OPENVLE_SAGA_RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,
    /// Transient failures of one step in a row before the event is parked (0: never).
    #[arg(long, env = "OPENVLE_SAGA_MAX_ATTEMPTS", default_value_t = 20)]
    pub max_attempts: u32,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and report the first position where it breaks (reads only:
    /// nothing is sealed, created or migrated; exit 0 intact, 2 broken, 3 no database, 1 error).
    Verify {
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One OpenVLE event's whole story: domain and saga events interleaved, in order.
    Show(crate::cmd::audit_show::AuditShowArgs),
    /// Extend the hash chain over events appended since the last seal (the engine seals after
    /// every append; this is for a seal that failed).
    Seal,
    /// Stream the log as JSON lines.
    Export {
        /// Only positions after this one.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Only this OpenVLE event's streams.
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MoodleCommand {
    /// Preflight: reachable, token valid, release, functions, site-admin token, categories,
    /// template courses and their manual enrolment, roles, auth plugin; exit 2 on a problem.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also run one real provisioning round on a scratch course (duplicate, account,
        /// enrol with each role, unenrol), then delete what it made. Changes Moodle.
        #[arg(long)]
        probe: bool,
        /// The template course the probe duplicates (default: the first linked one).
        #[arg(long, value_name = "ID", requires = "probe", value_parser = clap::value_parser!(i64).range(1..))]
        template: Option<i64>,
    },
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// The token the simulator accepts.
    #[arg(long, env = "MOODLE_SIM_TOKEN", hide_env_values = true, value_parser = secret)]
    pub token: moodle::Secret,
    /// Keep the simulated Moodle in this JSON file across restarts.
    #[arg(long)]
    pub persist: Option<PathBuf>,
    /// Added latency per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Added latency per course duplication, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub duplicate_latency_ms: u64,
    /// Share of calls answered with a transient error (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub transient_error_rate: f64,
    /// Share of calls applied and then answered with a lost response (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub lose_response_rate: f64,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The Moodle release to answer as (its error bodies and site information): 4.4 or 5.1.
    #[arg(long, default_value = "4.4")]
    pub moodle_version: moodle_sim::MoodleVersion,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's database here (default: a fresh file in a temporary folder).
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// Participants of the demo event.
    #[arg(long, default_value_t = 6)]
    pub participants: usize,
}

/// A token read from a flag or a variable, wrapped at once so that `Debug` never shows it.
fn token(value: &str) -> Result<api::Token, std::convert::Infallible> {
    Ok(api::Token::new(value))
}

fn secret(value: &str) -> Result<moodle::Secret, std::convert::Infallible> {
    Ok(moodle::Secret::new(value))
}
