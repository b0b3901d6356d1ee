//! The Moodle saga runner: keeps Moodle in step with the log, through crashes, retries, Moodle
//! outages and several workers.
//!
//! - **Durable delivery**: a checkpointed reader follows the global log (`store.read_all`) and
//!   upserts one work row per OpenVLE event (`saga_work`), moving its checkpoint in the same
//!   transaction. cqrs-es queries (at most once) are never relied upon.
//! - **One processor per OpenVLE event**: workers claim rows with a lease (PostgreSQL:
//!   `FOR UPDATE SKIP LOCKED`); different events run concurrently (`SagaConfig::concurrency`).
//! - **Level-triggered**: for a claimed event the worker folds the `event` stream (desired) and
//!   the `moodle_sync` stream (recorded), asks [`projections::saga::plan`] for the next batched
//!   step, runs it against Moodle, records the facts through the `MoodleSync` aggregate
//!   (causation = the domain event), and plans again until the plan is empty.
//! - **Exactly-once effects**: every outcome that may be unknown is resolved by looking before
//!   acting again (course by shortname, users by the match field with a case-insensitive email
//!   fallback), enrolment is an upsert, unenrolment of someone absent is silent, a course already
//!   deleted counts as deleted. A batch Moodle refuses is split to isolate the participant at
//!   fault, who alone is parked.
//! - **Failures**: transient → `StepFailed` and a retry with exponential backoff and jitter,
//!   parked after [`SagaConfig::max_attempts`] in a row; permanent → `Parked` with the reason;
//!   [`retry`] resumes.
//! - **Switched on later**: a reader that moved its checkpoint while the integration was off
//!   leaves a marker; the first enabled worker queues every OpenVLE event up to it.
//! - **Reconcile** ([`Worker::reconcile`]): the log against what Moodle holds, as drift rows;
//!   with [`ReconcileMode::Apply`], converged through the saga. Scheduled by
//!   [`SagaConfig::reconcile`] (the caller parses `MOODLE_RECONCILE_INTERVAL` and
//!   `MOODLE_RECONCILE_APPLY` with [`ReconcileSchedule::from_lookup`]: this crate reads no
//!   environment), it publishes `openvle_moodle_drift{kind}`.
//!
//! Where things are: `worker` (the reader, the run loop, one claim's plan → call → record loop),
//! `exec` (each step's Moodle calls, one file per lifecycle phase's calls), `reconcile` (observe,
//! compare, report, apply), `status` (status and retry), `db` (the saga's tables). Every decision
//! is pure and lives in `projections::saga`: the plan, the outcome policy (`outcome`), the
//! backoff (`retry`), matching accounts (`matching`).

mod clock;
mod db;
mod exec;
mod reconcile;
mod status;
mod worker;

use std::time::Duration;

pub use clock::{Clock, ManualClock};
pub use db::{ensure_schema, WorkState, CHECKPOINT};
pub use reconcile::{
    EventReconcile, ReconcileConfigError, ReconcileMode, ReconcileReport, ReconcileSchedule,
};
pub use status::{
    park_codes, retry, retry_parked, retry_participant, status, LastError, Park, ParkedEvent,
    ParkedParticipant, SagaStatus,
};
pub use worker::{RunStats, Worker};

pub use domain::moodle_sync::{DriftKind, DriftNote};
pub use projections::saga::{
    plan, Backoff, Desired, DriftRow, Plan, RemovalMode, RetryPolicy, SagaSettings, Step,
    SyncState, UserMatchField,
};

/// Tuning of a [`Worker`].
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// OpenVLE events processed at once by this worker (each one in order).
    pub concurrency: usize,
    /// How often an idle worker looks for new log entries and due retries.
    pub poll_interval: Duration,
    /// Log rows read per reader step.
    pub read_batch: usize,
    /// Accounts per `core_user_create_users` call.
    pub user_batch: usize,
    /// Items per `enrol_manual_enrol_users` / `enrol_manual_unenrol_users` call.
    pub enrol_batch: usize,
    /// This worker's name in claims (unique per process; a restarted process with the same id
    /// takes its old claims back at once). The default has no host name (the caller knows it:
    /// see [`default_worker_id`]).
    pub worker_id: String,
    /// First retry delay after a transient failure (doubled per attempt, with jitter).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How long a claim stays ours without renewal (renewed every third of it while working).
    pub lease: Duration,
    /// Steps run for one event in one claim before it is handed back (a safety net: a plan that
    /// never empties must not hold a worker for ever).
    pub max_steps_per_claim: u32,
    /// Course duplications this process runs at once (at least 1). Moodle's backup and restore
    /// are its heaviest work, and concurrent ones collide in its file area and its context table
    /// (`storedfilenotcreated`, a duplicate key on `mdl_context`), leaving a half-made course.
    pub max_duplications: usize,
    /// Transient failures of one step in a row before the event is parked with the reason (an
    /// operator then resumes it with `retry`). 0: retry for ever.
    pub max_attempts: u32,
    /// The scheduled reconcile (`MOODLE_RECONCILE_INTERVAL`, `MOODLE_RECONCILE_APPLY`, parsed by
    /// the caller with [`ReconcileSchedule::from_lookup`]); None: off.
    pub reconcile: Option<ReconcileSchedule>,
    /// What claims and leases are measured by: the system clock, or a manual one in tests.
    pub clock: Clock,
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            concurrency: 8,
            poll_interval: Duration::from_millis(500),
            read_batch: 500,
            user_batch: moodle::MAX_USERS_PER_CALL,
            enrol_batch: moodle::MAX_ENROLMENTS_PER_CALL,
            worker_id: default_worker_id(None),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            lease: Duration::from_secs(60),
            max_steps_per_claim: 64,
            max_duplications: 1,
            max_attempts: 20,
            reconcile: None,
            clock: Clock::System,
        }
    }
}

impl SagaConfig {
    /// The retry rules of [`SagaConfig::max_attempts`] and the backoff.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: Backoff {
                base: self.backoff_base,
                max: self.backoff_max,
            },
        }
    }
}

/// `<host>-<pid>-<random>`, `worker` standing for a missing or empty host name. The caller
/// gives the host (e.g. `HOSTNAME`): the saga reads no environment.
pub fn default_worker_id(host: Option<&str>) -> String {
    let host = host.filter(|h| !h.is_empty()).unwrap_or("worker");
    let tag: u32 = rand::random();
    format!("{host}-{}-{tag:08x}", std::process::id())
}

/// What stops the saga (never a Moodle failure: those are recorded, retried or parked).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("saga tables: {0}")]
    Db(#[from] sqlx::Error),
    /// The saga's tables are not as the migrations make them (the migrations did not run).
    #[error("saga schema: {0}")]
    Schema(String),
    #[error("Moodle client: {0}")]
    Moodle(#[from] moodle::MoodleError),
    #[error("the saga's record refused a fact: {0}")]
    Record(String),
    #[error("the Moodle integration is disabled (MOODLE_ENABLED): nothing to reconcile")]
    Disabled,
}

impl SagaError {
    /// Whether the database was unreachable (retry later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            SagaError::Store(e) => e.is_unavailable(),
            SagaError::Db(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_worker_id_takes_the_host_it_is_given() {
        let pid = std::process::id();
        assert!(default_worker_id(Some("web-1")).starts_with(&format!("web-1-{pid}-")));
        for host in [None, Some("")] {
            let id = default_worker_id(host);
            assert!(id.starts_with(&format!("worker-{pid}-")), "{id}");
            assert_eq!(id.len(), format!("worker-{pid}-").len() + 8, "{id}");
        }
        assert!(SagaConfig::default()
            .worker_id
            .starts_with(&format!("worker-{pid}-")));
    }

    #[test]
    fn the_retry_policy_is_the_config_s() {
        let cfg = SagaConfig {
            max_attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
            ..SagaConfig::default()
        };
        let p = cfg.retry_policy();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.backoff.delay(9, 0), Duration::from_millis(20));
        assert_eq!(p.backoff.delay(1, 5), Duration::from_millis(10));
    }
}
