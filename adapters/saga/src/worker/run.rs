//! The long-running worker: reads the log, claims ready events (at most `concurrency` at once),
//! renews its leases, runs the scheduled reconcile, and on shutdown lets every event finish the
//! step it is in before handing the rest back. Also the one-shot [`Worker::run_until_idle`] and
//! [`Worker::process_event`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinSet;

use super::Worker;
use crate::db::{self, Claim, WorkState};
use crate::{RunStats, SagaError};

impl Worker {
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
                    .map(|at| (at - self.inner.config.clock.now_ms()).max(1) as u64)
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
