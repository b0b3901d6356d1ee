//! The saga worker, one file per concern:
//!
//! - here: the [`Worker`] handle, its shared state and counters;
//! - [`feed`]: the checkpointed reader (log → one work row per OpenVLE event, and the backfill
//!   of events deployed while the integration was off);
//! - [`run`]: the long-running loop (claims, lease heartbeat, scheduled reconcile, graceful
//!   stop) and [`Worker::run_until_idle`];
//! - [`process`]: one claim's plan → call → record loop. The Moodle calls of each lifecycle
//!   phase are in `exec` (see its module doc); what happens after a step (record a failure,
//!   retry later, park) is decided by `projections::saga::outcome`, purely.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moodle::MoodleClient;
use projections::saga::SagaSettings;
use store::Store;
use tokio::sync::Notify;

use crate::db;
use crate::exec;
use crate::{SagaConfig, SagaError};

mod effects;
mod feed;
mod process;
mod run;

/// What [`Worker::run_until_idle`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Steps run against Moodle (or recorded without a call).
    pub steps: u64,
    /// Claims that ended with an empty plan.
    pub done: u64,
    /// Transient failures scheduled for a retry.
    pub retries: u64,
    /// Events parked.
    pub parked: u64,
}

#[derive(Default)]
struct Counters {
    steps: AtomicU64,
    done: AtomicU64,
    retries: AtomicU64,
    parked: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RunStats {
        RunStats {
            steps: self.steps.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
        }
    }
}

struct Inner {
    store: Store,
    moodle: Option<MoodleClient>,
    settings: SagaSettings,
    config: SagaConfig,
    wake: Notify,
    stopping: AtomicBool,
    schema_ready: AtomicBool,
    backfill_checked: AtomicBool,
    counters: Counters,
    steps: exec::StepContext,
}

/// A saga worker. Cheap to clone (clones share everything); run one per process (`serve` runs
/// one beside the API, `worker` runs one alone); several processes may share one PostgreSQL.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.inner.config.worker_id)
            .field("enabled", &self.inner.settings.enabled)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `store`. `moodle` is required when `settings.enabled` (without it every
    /// step waits and retries); when the integration is disabled the worker still follows the
    /// log and moves its checkpoint but never calls Moodle.
    pub fn new(
        store: Store,
        moodle: Option<MoodleClient>,
        settings: SagaSettings,
        config: SagaConfig,
    ) -> Worker {
        let timeout = moodle
            .as_ref()
            .map_or(Duration::from_secs(600), MoodleClient::duplicate_timeout);
        let steps = exec::StepContext::new(
            projections::saga::landing_window(timeout),
            config.max_duplications,
        );
        Worker {
            inner: Arc::new(Inner {
                steps,
                store,
                moodle,
                settings,
                config,
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
                schema_ready: AtomicBool::new(false),
                backfill_checked: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        }
    }

    /// Wakes an idle worker at once (e.g. the API after a command committed). Only a hint: the
    /// worker polls the log anyway.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn config(&self) -> &SagaConfig {
        &self.inner.config
    }

    pub fn settings(&self) -> &SagaSettings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn moodle(&self) -> Option<&MoodleClient> {
        self.inner.moodle.as_ref()
    }

    /// Totals since this worker was made.
    pub fn stats(&self) -> RunStats {
        self.inner.counters.snapshot()
    }

    async fn ensure_schema(&self) -> Result<(), SagaError> {
        if !self.inner.schema_ready.load(Ordering::Acquire) {
            db::ensure_schema(&self.inner.store).await?;
            self.inner.schema_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn lease_until(&self) -> i64 {
        self.inner.config.clock.now_ms() + self.inner.config.lease.as_millis() as i64
    }
}
