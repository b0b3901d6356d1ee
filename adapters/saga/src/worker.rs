//! The worker: the checkpointed reader, the claims, and the plan → call → record loop.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::{MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use moodle::MoodleClient;
use projections::saga::{plan, Desired, SagaSettings, Step, SyncState};
use store::{CommandError, CommandMeta, Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::db::{self, now_ms, Claim, Release, Wanted, WorkState};
use crate::exec;
use crate::{SagaConfig, SagaError};

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

/// How processing one claim ended (before the row is updated).
enum Ended {
    Release(Release),
    /// Another worker holds the row now: leave it alone.
    LeaseLost,
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
        let steps = exec::StepContext::new(projections::saga::landing_window(timeout));
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

    /// A worker from the `MOODLE_*` settings: builds the Moodle client when the integration is on.
    ///
    /// When `config.reconcile` is None it is read from `MOODLE_RECONCILE_INTERVAL` and
    /// `MOODLE_RECONCILE_APPLY` (an invalid value is an error naming the variable).
    pub fn from_moodle_settings(
        store: Store,
        moodle: &moodle::MoodleSettings,
        mut config: SagaConfig,
    ) -> Result<Worker, SagaError> {
        if config.reconcile.is_none() {
            config.reconcile = crate::ReconcileSchedule::from_env()?;
        }

        let client = if moodle.enabled {
            Some(MoodleClient::new(moodle)?)
        } else {
            None
        };
        Ok(Worker::new(
            store,
            client,
            crate::saga_settings(moodle),
            config,
        ))
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

    /// Reads the log from the checkpoint to the head, upserting one work row per OpenVLE event
    /// touched, and moves the checkpoint with them (one transaction per page). Returns the number
    /// of log rows consumed.
    pub async fn feed(&self) -> Result<usize, SagaError> {
        self.ensure_schema().await?;
        let store = &self.inner.store;
        let enabled = self.inner.settings.enabled;
        if enabled && !self.inner.backfill_checked.load(Ordering::Acquire) {
            self.backfill().await?;
            self.inner.backfill_checked.store(true, Ordering::Release);
        }
        let page = self.inner.config.read_batch.max(1);
        let mut total = 0usize;
        loop {
            let from = db::checkpoint(store).await?;
            let rows = store.read_all(from, page).await?;
            let Some(last) = rows.last() else {
                return Ok(total);
            };
            let to = last.position;
            let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
            if self.inner.settings.enabled {
                for row in &rows {
                    let resume = row.aggregate_type == <MoodleSync as Aggregate>::TYPE
                        && row.event_type == "Resumed";
                    if row.aggregate_type == <VleEvent as Aggregate>::TYPE || resume {
                        let w = wanted.entry(row.aggregate_id.clone()).or_insert(Wanted {
                            event_id: row.aggregate_id.clone(),
                            position: row.position,
                            resume: false,
                        });
                        w.position = w.position.max(row.position);
                        w.resume |= resume;
                    }
                }
            }
            let wanted: Vec<Wanted> = wanted.into_values().collect();
            if db::advance(store, from, to, &wanted).await? {
                if !enabled {
                    // Switched on later, a worker queues what was deployed meanwhile.
                    db::mark_disabled(store, to).await?;
                }
                total += rows.len();
                if rows.len() < page {
                    return Ok(total);
                }
            }
            // Lost the race with another reader: read again from its checkpoint.
        }
    }

    /// The integration was switched on after the reader had moved past events while it was off:
    /// queue every OpenVLE event of the log up to there (those without a template finish at
    /// once), so events deployed meanwhile are provisioned.
    async fn backfill(&self) -> Result<(), SagaError> {
        let store = &self.inner.store;
        let Some(upto) = db::disabled_marker(store).await? else {
            return Ok(());
        };
        let events = db::vle_events(store, Some(upto)).await?;
        tracing::info!(
            events = events.len(),
            upto,
            "the Moodle integration was off while the log moved: queueing every event up to there"
        );
        for (event_id, position) in &events {
            db::touch(store, event_id, *position).await?;
        }
        db::clear_disabled_marker(store).await?;
        Ok(())
    }

    /// Processes one OpenVLE event now (its plan → call → record loop) if it is queued, even
    /// while it waits out a retry delay, unless another worker holds it or it is parked. Returns
    /// its work row's state afterwards (None: never queued). Reads no log: call [`Worker::feed`]
    /// first to queue what was appended.
    pub async fn process_event(&self, event_id: &str) -> Result<Option<WorkState>, SagaError> {
        self.ensure_schema().await?;
        let store = &self.inner.store;
        if let Some(claim) = db::claim_event(
            store,
            &self.inner.config.worker_id,
            event_id,
            self.inner.config.clock.now_ms(),
            self.lease_until(),
        )
        .await?
        {
            self.work(claim).await;
        }
        db::work_state(store, event_id).await
    }

    /// Runs until `shutdown` completes; then stops claiming, lets each event in progress finish
    /// the step it is in, hands unfinished events back, and returns.
    ///
    /// The returned future is `Send + 'static`: `tokio::spawn(worker.run(shutdown))` works.
    pub fn run<S>(self, shutdown: S) -> Pin<Box<dyn Future<Output = Result<(), SagaError>> + Send>>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        Box::pin(self.run_inner(shutdown))
    }

    async fn run_inner<S>(self, shutdown: S) -> Result<(), SagaError>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        self.schema_boxed().await?;
        let cfg = self.inner.config.clone();
        let released = self.release_all_boxed().await?;
        if released > 0 {
            tracing::info!(released, worker = %cfg.worker_id, "took back the claims of a previous run");
        }
        tracing::info!(
            worker = %cfg.worker_id,
            enabled = self.inner.settings.enabled,
            concurrency = cfg.concurrency,
            "moodle saga worker started"
        );
        let mut shutdown: BoxFuture<'static, ()> = Box::pin(shutdown);
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut heartbeat = tokio::time::interval((cfg.lease / 3).max(Duration::from_millis(10)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The scheduled reconcile: one pass at a time, in its own task.
        let schedule = cfg.reconcile.filter(|_| self.inner.settings.enabled);
        let mut reconcile_timer = schedule.map(|s| {
            let mut t =
                tokio::time::interval_at(tokio::time::Instant::now() + s.interval, s.interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            t
        });
        if let Some(s) = schedule {
            tracing::info!(
                interval_s = s.interval.as_secs(),
                apply = s.apply,
                "scheduled reconcile on"
            );
        }
        let mut reconcile_task: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            if let Err(e) = self.feed_boxed().await {
                tracing::warn!(error = %e, "saga reader: cannot read the log (will retry)");
            }
            let free = cfg.concurrency.max(1).saturating_sub(tasks.len());
            if free > 0 {
                match self.claim_boxed(free).await {
                    Ok(claims) => {
                        for claim in claims {
                            let w = self.clone();
                            tasks.spawn(async move { w.work(claim).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "saga: cannot claim work (will retry)"),
                }
            }
            self.gauges_boxed().await;
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = self.woken() => {}
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = heartbeat.tick() => {
                    if let Err(e) = self.renew_boxed().await {
                        tracing::warn!(error = %e, "saga: cannot renew leases");
                    }
                }
                _ = next_tick(&mut reconcile_timer) => {
                    let idle = reconcile_task.as_ref().is_none_or(|t| t.is_finished());
                    if let (true, Some(s)) = (idle, schedule) {
                        reconcile_task = Some(tokio::spawn(self.clone().reconcile_boxed(s.apply)));
                    }
                }
            }
        }
        if let Some(t) = reconcile_task.take() {
            t.abort();
        }
        tracing::info!(in_flight = tasks.len(), "moodle saga worker stopping");
        self.inner.stopping.store(true, Ordering::Release);
        while tasks.join_next().await.is_some() {}
        let _ = self.release_all_boxed().await;
        tracing::info!("moodle saga worker stopped");
        Ok(())
    }

    /// Processes until nothing is pending: the log is read to its head and every work row is done
    /// or parked (waiting out retry delays and other workers' claims). For tests, `replay`-style
    /// one-shots and benchmarks.
    pub async fn run_until_idle(&self) -> Result<RunStats, SagaError> {
        self.ensure_schema().await?;
        let cfg = &self.inner.config;
        loop {
            self.feed().await?;
            let claims = db::claim(
                &self.inner.store,
                &cfg.worker_id,
                cfg.concurrency.max(1),
                cfg.clock.now_ms(),
                self.lease_until(),
            )
            .await?;
            if claims.is_empty() {
                let counts = db::counts(&self.inner.store).await?;
                if counts.pending == 0 {
                    self.publish_gauges().await;
                    return Ok(self.stats());
                }
                let wait = counts
                    .next_attempt_at
                    .map(|at| (at - now_ms()).max(1) as u64)
                    .map(Duration::from_millis)
                    .unwrap_or(cfg.poll_interval)
                    .min(cfg.poll_interval)
                    .max(Duration::from_millis(2));
                tokio::time::sleep(wait).await;
                continue;
            }
            let work = claims.into_iter().map(|c| self.work(c));
            futures::future::join_all(work).await;
        }
    }

    // Boxed futures: they keep `run`'s future provably `Send` (rustc cannot prove it through
    // some higher-ranked lifetimes of sqlx and tokio otherwise, rust-lang/rust#102211).
    fn feed_boxed(&self) -> BoxFuture<'_, Result<usize, SagaError>> {
        Box::pin(self.feed())
    }

    fn claim_boxed(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Claim>, SagaError>> {
        let until = self.lease_until();
        Box::pin(async move {
            db::claim(
                &self.inner.store,
                &self.inner.config.worker_id,
                limit,
                self.inner.config.clock.now_ms(),
                until,
            )
            .await
        })
    }

    fn renew_boxed(&self) -> BoxFuture<'_, Result<u64, SagaError>> {
        let until = self.lease_until();
        Box::pin(async move {
            db::renew_all(&self.inner.store, &self.inner.config.worker_id, until).await
        })
    }

    fn release_all_boxed(&self) -> BoxFuture<'_, Result<u64, SagaError>> {
        Box::pin(
            async move { db::release_all(&self.inner.store, &self.inner.config.worker_id).await },
        )
    }

    fn reconcile_boxed(self, apply: bool) -> BoxFuture<'static, ()> {
        Box::pin(self.scheduled_reconcile(apply))
    }

    fn gauges_boxed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.publish_gauges())
    }

    fn woken(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.wake.notified())
    }

    fn schema_boxed(&self) -> BoxFuture<'_, Result<(), SagaError>> {
        Box::pin(self.ensure_schema())
    }

    fn lease_until(&self) -> i64 {
        self.inner.config.clock.now_ms() + self.inner.config.lease.as_millis() as i64
    }

    /// Processes one claim and updates its row.
    async fn work(&self, claim: Claim) {
        let store = &self.inner.store;
        let worker = &self.inner.config.worker_id;
        let ended = match self.process(&claim).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(event = %claim.event_id, error = %e, "saga: processing failed");
                match &e {
                    SagaError::Store(StoreError::Decode { .. }) => {
                        Ended::Release(Release::Parked {
                            reason: format!("the log cannot be read: {e}"),
                        })
                    }
                    _ => Ended::Release(Release::RetryAt {
                        at: now_ms() + self.backoff(claim.attempts as u32 + 1).as_millis() as i64,
                        attempts: claim.attempts + 1,
                        reason: e.to_string(),
                    }),
                }
            }
        };
        let release = match ended {
            Ended::LeaseLost => {
                tracing::warn!(event = %claim.event_id, "saga: lease lost to another worker; leaving the event to it");
                return;
            }
            Ended::Release(r) => r,
        };
        match &release {
            Release::Done { .. } => self.inner.counters.done.fetch_add(1, Ordering::Relaxed),
            Release::RetryAt { .. } => self.inner.counters.retries.fetch_add(1, Ordering::Relaxed),
            Release::Parked { .. } => self.inner.counters.parked.fetch_add(1, Ordering::Relaxed),
            Release::Abandon => 0,
        };
        if let Err(e) = db::release(store, worker, &claim, &release).await {
            tracing::warn!(event = %claim.event_id, error = %e, "saga: cannot release the claim (its lease will expire)");
        }
    }

    /// Exponential backoff with jitter: base·2^(attempt-1), at most max, then a random 50–100 %.
    fn backoff(&self, attempt: u32) -> Duration {
        let cfg = &self.inner.config;
        let exp = attempt.saturating_sub(1).min(30);
        let full = cfg
            .backoff_base
            .saturating_mul(1u32 << exp.min(20))
            .min(cfg.backoff_max);
        let ms = full.as_millis() as u64;
        let jittered = ms / 2
            + if ms > 1 {
                rand::random::<u64>() % (ms / 2 + 1)
            } else {
                0
            };
        Duration::from_millis(jittered)
    }

    /// Plan, call, record, until the plan is empty or something stops it.
    async fn process(&self, claim: &Claim) -> Result<Ended, SagaError> {
        let store = &self.inner.store;
        let cfg = &self.inner.config;
        let id = claim.event_id.as_str();
        let mut steps = 0u32;
        // An announced duplication is called before a graceful stop hands the event back: the
        // next process would otherwise have to wait out the announcement.
        let mut call_due = false;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) && !call_due {
                return Ok(Ended::Release(Release::Abandon));
            }
            if !db::renew(store, &cfg.worker_id, id, self.lease_until()).await? {
                return Ok(Ended::LeaseLost);
            }
            let rows = store.read_stream(<VleEvent as Aggregate>::TYPE, id).await?;
            let mut correlation: HashMap<Uuid, Uuid> = HashMap::new();
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(c) = row
                    .meta("correlation_id")
                    .and_then(|c| Uuid::parse_str(c).ok())
                {
                    correlation.insert(row.event_id, c);
                }
                events.push((row.sequence.max(0) as u64, row.decode::<VleEvent>()?));
            }
            let desired = Desired::fold(id, events);
            let (recorded, version) = store.load::<MoodleSync>(id).await?.unwrap_or_default();
            let plan = plan(&desired, &recorded, &self.inner.settings);
            let Some(step) = plan.next() else {
                return Ok(Ended::Release(Release::Done {
                    state: plan.state.as_str(),
                    reason: failed_reason(plan.state, &recorded),
                }));
            };
            if steps >= cfg.max_steps_per_claim {
                return Ok(Ended::Release(Release::RetryAt {
                    at: now_ms() + self.backoff(1).as_millis() as i64,
                    attempts: claim.attempts,
                    reason: format!("still {} after {steps} steps; handed back", step.name()),
                }));
            }
            steps += 1;
            let Some(client) = &self.inner.moodle else {
                return Ok(Ended::Release(Release::RetryAt {
                    at: now_ms() + cfg.backoff_max.as_millis() as i64,
                    attempts: claim.attempts + 1,
                    reason:
                        "the Moodle integration is enabled but this worker has no Moodle client"
                            .into(),
                }));
            };

            let mut out = exec::run_step(client, cfg, &self.inner.steps, step).await;
            if let Some(f) = out.failure.as_mut() {
                settling(f, &recorded);
            }
            self.inner.counters.steps.fetch_add(1, Ordering::Relaxed);
            let outcome = match &out.failure {
                None if out.wait_until.is_some() => "waiting",
                None => "ok",
                Some(f) if f.transient => "transient",
                Some(_) => "parked",
            };
            metrics::counter!("openvle_saga_steps_total", "step" => step.name(), "outcome" => outcome)
                .increment(1);

            let cause = step.cause();
            let attempt = recorded.attempts + 1;
            let mut facts = out.facts;
            call_due = facts
                .iter()
                .any(|f| matches!(f, MoodleSyncEvent::CourseDuplicationStarted { .. }));
            if let Some(f) = &out.failure {
                tracing::warn!(
                    event = id,
                    step = step.name(),
                    code = %f.code,
                    attempt,
                    transient = f.transient,
                    "moodle step failed: {}",
                    f.message
                );
                facts.push(MoodleSyncEvent::StepFailed {
                    step: step.name().to_string(),
                    code: f.code.clone(),
                    message: f.message.clone(),
                    attempt,
                    transient: f.transient,
                    participant_id: f.participant_id.clone(),
                    caused_by: cause.event_id,
                });
                if !f.transient {
                    facts.push(MoodleSyncEvent::Parked {
                        step: step.name().to_string(),
                        code: f.code.clone(),
                        reason: f.message.clone(),
                        caused_by: cause.event_id,
                    });
                } else if gave_up(cfg.max_attempts, attempt) {
                    facts.push(MoodleSyncEvent::Parked {
                        step: step.name().to_string(),
                        code: f.code.clone(),
                        reason: format!(
                            "gave up after {attempt} attempts (max_attempts {}): {}",
                            cfg.max_attempts, f.message
                        ),
                        caused_by: cause.event_id,
                    });
                }
            } else {
                tracing::debug!(
                    event = id,
                    step = step.name(),
                    items = step.len(),
                    "moodle step done"
                );
            }
            let fenced = match self
                .record(
                    id,
                    version,
                    facts,
                    cause.event_id,
                    correlation.get(&cause.event_id).copied(),
                    step,
                )
                .await?
            {
                Recorded::Ok { fenced } => fenced,
                Recorded::Refused(reason) => return Ok(Ended::Release(Release::Parked { reason })),
                Recorded::Conflict => {
                    return Ok(Ended::Release(Release::RetryAt {
                        at: now_ms() + self.backoff(1).as_millis() as i64,
                        attempts: claim.attempts,
                        reason: "the saga's record kept changing concurrently".into(),
                    }))
                }
            };
            if let (None, Some((at, reason))) = (&out.failure, out.wait_until) {
                // Not a failure: no attempt is counted, nothing is parked.
                tracing::info!(event = id, step = step.name(), "{reason}");
                return Ok(Ended::Release(Release::RetryAt {
                    at,
                    attempts: claim.attempts,
                    reason,
                }));
            }
            match out.failure {
                None if fenced => return Ok(Ended::Release(Release::Abandon)),
                None => continue,
                Some(f) if f.transient && gave_up(cfg.max_attempts, attempt) => {
                    return Ok(Ended::Release(Release::Parked {
                        reason: format!(
                            "{} failed {attempt} times in a row, parked (max_attempts {}): {}: {}",
                            step.name(),
                            cfg.max_attempts,
                            f.code,
                            f.message
                        ),
                    }))
                }
                Some(f) if f.transient => {
                    return Ok(Ended::Release(Release::RetryAt {
                        at: now_ms() + self.backoff(attempt).as_millis() as i64,
                        attempts: attempt as i64,
                        reason: format!("{}: {}", f.code, f.message),
                    }))
                }
                Some(f) => {
                    return Ok(Ended::Release(Release::Parked {
                        reason: format!("{} failed: {}: {}", step.name(), f.code, f.message),
                    }))
                }
            }
        }
    }

    /// Records facts through the `MoodleSync` aggregate, with the causing domain event as
    /// causation. `fenced` tells that another writer appended to the stream since it was loaded
    /// at `version` (the facts are true either way; the caller then hands the event back).
    async fn record(
        &self,
        id: &str,
        version: u64,
        facts: Vec<MoodleSyncEvent>,
        cause: Uuid,
        correlation: Option<Uuid>,
        step: &Step,
    ) -> Result<Recorded, SagaError> {
        if facts.is_empty() {
            return Ok(Recorded::Ok { fenced: false });
        }
        let store = &self.inner.store;
        let causation = (!cause.is_nil()).then_some(cause);
        let meta = CommandMeta::new(format!("saga:{}", self.inner.config.worker_id))
            .with_correlation(
                correlation.or(causation).unwrap_or_else(Uuid::new_v4),
                causation,
            );
        let current = store
            .last_sequence(<MoodleSync as Aggregate>::TYPE, id)
            .await?;
        let fenced = current != version;
        if fenced {
            tracing::info!(
                event = id,
                version,
                current,
                "saga record moved since planning (another writer)"
            );
        }
        match store
            .execute::<MoodleSync>(id, MoodleSyncCommand::Record(facts), &meta)
            .await
        {
            Ok(_) => Ok(Recorded::Ok { fenced }),
            Err(CommandError::Rejected(e)) => {
                let reason = format!(
                    "the saga's record refused the outcome of {}: {e}",
                    step.name()
                );
                let parked = MoodleSyncEvent::Parked {
                    step: step.name().to_string(),
                    code: e.code().to_string(),
                    reason: reason.clone(),
                    caused_by: cause,
                };
                store
                    .execute::<MoodleSync>(id, MoodleSyncCommand::Record(vec![parked]), &meta)
                    .await
                    .map_err(|e| SagaError::Record(e.to_string()))?;
                Ok(Recorded::Refused(reason))
            }
            Err(CommandError::Conflict) => Ok(Recorded::Conflict),
            Err(CommandError::Store(e)) => Err(e.into()),
        }
    }

    async fn publish_gauges(&self) {
        let store = &self.inner.store;
        if let (Ok(head), Ok(cp), Ok(counts)) = (
            store.head().await,
            db::checkpoint(store).await,
            db::counts(store).await,
        ) {
            metrics::gauge!("openvle_saga_lag").set((head - cp).max(0) as f64);
            metrics::gauge!("openvle_saga_pending").set(counts.pending as f64);
            metrics::gauge!("openvle_saga_in_flight").set(counts.in_flight as f64);
            metrics::gauge!("openvle_saga_parked").set(counts.failed as f64);
        }
    }
}

/// The next tick of an optional timer (never, without one).
async fn next_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Moodle creates a duplicated course (with its shortname) before it restores the template into
/// it, and adds the enrolment methods at the end of the restore. After a duplication whose answer
/// was lost, the saga adopts that course by shortname and may enrol before the restore is done:
/// Moodle then answers `wsnoinstance`. For an adopted course that answer is retried with backoff
/// (and parks after `max_attempts`); for a course whose creation answer arrived it is the
/// configuration problem it says.
fn settling(f: &mut exec::Failure, recorded: &MoodleSync) {
    if !f.transient && f.code == "wsnoinstance" && recorded.course_adopted {
        f.transient = true;
    }
}

/// Whether a step that failed transiently `attempt` times in a row is given up on.
fn gave_up(max_attempts: u32, attempt: u32) -> bool {
    max_attempts > 0 && attempt >= max_attempts
}

enum Recorded {
    Ok { fenced: bool },
    Refused(String),
    Conflict,
}

/// Why an event with an empty plan still needs a person.
fn failed_reason(state: SyncState, recorded: &MoodleSync) -> Option<String> {
    if state != SyncState::Failed {
        return None;
    }
    if let Some((step, code, reason)) = &recorded.parked {
        return Some(format!("{step} failed: {code}: {reason}"));
    }
    let parts: Vec<String> = recorded
        .participants
        .iter()
        .filter_map(|(id, p)| {
            p.parked
                .as_ref()
                .map(|(code, reason)| format!("participant {id}: {code}: {reason}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}
