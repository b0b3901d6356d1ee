//! The long-running part: the reader (log → outbox) and the sender (outbox → receiver), two
//! loops of one task that `serve` spawns beside the saga. They share nothing with the saga but
//! the log, which they only read: a receiver that is down, slow or failing never holds the saga
//! up, and the saga never waits for a webhook.
//!
//! The sender keeps up to `concurrency` attempts in flight, each the earliest pending message of
//! its event (so an event's messages go out in order, different events in parallel). An attempt
//! ends in the outbox before the event's next message is taken; a process killed in between
//! sends the message again after a restart, with the same id (at least once).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{FutureExt, Shared};
use futures::stream::{FuturesUnordered, StreamExt};
use projections::saga::SagaSettings;
use store::Store;
use tokio::sync::Notify;

use crate::config::{shown_url, WebhookConfig};
use crate::db::{self, Outcome};
use crate::deliver;
use crate::error::WebhookError;
use crate::outbox::Reader;

/// How often the gauges are refreshed.
const HOUSEKEEPING: Duration = Duration::from_secs(2);
/// Delivered messages are pruned every this many refreshes (ten minutes): a delete takes the
/// write lock on SQLite, which the saga needs more.
const PRUNE_EVERY: u32 = 300;

/// The outbox and its sender, configured.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    settings: SagaSettings,
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Describes every webhook metric (their `# HELP` lines). Call after the process's recorder is
/// installed (`serve` calls it after the API's `metrics::init`).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "openvle_webhook_delivered_total",
        "Webhook messages delivered (answered 2xx), by type"
    );
    metrics::describe_counter!(
        "openvle_webhook_failed_total",
        "Webhook delivery attempts that failed (retried, or dead when final is true)"
    );
    metrics::describe_gauge!(
        "openvle_webhook_pending",
        "Webhook messages waiting to be delivered"
    );
    metrics::describe_gauge!(
        "openvle_webhook_dead",
        "Webhook messages given up on (see status; webhooks redeliver)"
    );
    metrics::describe_gauge!(
        "openvle_webhook_lag",
        "Log positions between the webhook outbox's checkpoint and the head"
    );
    metrics::describe_gauge!(
        "openvle_webhook_oldest_pending_seconds",
        "Age of the oldest webhook message not delivered yet"
    );
    metrics::describe_histogram!(
        "openvle_webhook_delivery_duration_seconds",
        metrics::Unit::Seconds,
        "Webhook delivery attempt latency, until the receiver's answer"
    );
}

impl Webhooks {
    /// `settings` are the saga's: the view's Moodle state depends on them (integration off:
    /// `disabled`).
    pub fn new(
        store: Store,
        settings: SagaSettings,
        config: WebhookConfig,
    ) -> Result<Webhooks, WebhookError> {
        let client = deliver::client(&config)?;
        Ok(Webhooks {
            store,
            settings,
            config: Arc::new(config),
            client,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Runs the reader and the sender until `shutdown` completes; attempts in flight then end
    /// (within the timeout) and are recorded before this returns.
    pub async fn run<S>(self, shutdown: S) -> Result<(), WebhookError>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        db::ensure_schema(&self.store).await?;
        let released = db::release_claims(&self.store, &self.config.worker_id).await?;
        tracing::info!(
            url = %shown_url(&self.config.url),
            concurrency = self.config.concurrency,
            released,
            "webhooks started"
        );
        let stop = shutdown.boxed().shared();
        let (read, sent) = tokio::join!(self.read_loop(stop.clone()), self.send_loop(stop));
        read.and(sent)
    }

    /// Reads the log into the outbox and sends what is due until nothing is left (tests, and
    /// a one-shot drain). Returns the messages sent (delivered or not).
    pub async fn run_until_idle(&self) -> Result<usize, WebhookError> {
        db::ensure_schema(&self.store).await?;
        let mut reader = Reader::new(
            self.store.clone(),
            self.settings.clone(),
            self.config.read_batch,
        );
        reader.feed().await?;
        let mut sent = 0;
        loop {
            let due = self.claim().await?;
            if due.is_empty() {
                return Ok(sent);
            }
            sent += due.len();
            futures::future::join_all(due.into_iter().map(|m| self.attempt(m))).await;
        }
    }

    async fn read_loop(
        &self,
        stop: Shared<futures::future::BoxFuture<'static, ()>>,
    ) -> Result<(), WebhookError> {
        let mut reader = Reader::new(
            self.store.clone(),
            self.settings.clone(),
            self.config.read_batch,
        );
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u32 = 0;
        loop {
            tokio::select! {
                () = stop.clone() => return Ok(()),
                _ = tick.tick() => match reader.feed().await {
                    Ok(0) => {}
                    Ok(_) => self.wake.notify_one(),
                    Err(e @ WebhookError::Schema(_)) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "webhook outbox: reading the log failed; trying again"),
                },
                _ = housekeeping.tick() => {
                    let prune = ticks == 0;
                    ticks = if ticks + 1 >= PRUNE_EVERY { 0 } else { ticks + 1 };
                    if let Err(e) = self.housekeeping(prune).await {
                        tracing::warn!(error = %e, "webhook outbox: housekeeping failed");
                    }
                }
            }
        }
    }

    /// Refreshes the gauges, and (`prune`) deletes what was delivered long ago.
    async fn housekeeping(&self, prune: bool) -> Result<(), WebhookError> {
        let now = chrono::Utc::now().timestamp_millis();
        if prune {
            let keep = self.config.keep_delivered.as_millis() as i64;
            db::prune_delivered(&self.store, now - keep).await?;
        }
        let counts = db::counts(&self.store).await?;
        let head = self.store.head().await?;
        let checkpoint = db::checkpoint(&self.store).await?;
        metrics::gauge!("openvle_webhook_pending").set(counts.pending as f64);
        metrics::gauge!("openvle_webhook_dead").set(counts.dead as f64);
        metrics::gauge!("openvle_webhook_lag").set((head - checkpoint).max(0) as f64);
        let oldest = counts
            .oldest_pending_ms
            .map_or(0.0, |t| ((now - t).max(0) as f64) / 1000.0);
        metrics::gauge!("openvle_webhook_oldest_pending_seconds").set(oldest);
        Ok(())
    }

    async fn send_loop(
        &self,
        stop: Shared<futures::future::BoxFuture<'static, ()>>,
    ) -> Result<(), WebhookError> {
        let limit = self.config.concurrency.max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut stopping = false;
        loop {
            if !stopping && in_flight.len() < limit {
                match self.claim_up_to(limit - in_flight.len()).await {
                    Ok(due) => {
                        for m in due {
                            in_flight.push(self.attempt(m));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook outbox: taking messages failed; trying again")
                    }
                }
            }
            if stopping && in_flight.is_empty() {
                return Ok(());
            }
            tokio::select! {
                () = stop.clone(), if !stopping => stopping = true,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    async fn claim(&self) -> Result<Vec<db::Due>, WebhookError> {
        self.claim_up_to(self.config.concurrency.max(1)).await
    }

    async fn claim_up_to(&self, n: usize) -> Result<Vec<db::Due>, WebhookError> {
        let now = chrono::Utc::now().timestamp_millis();
        // Held for the attempt's timeout and a margin: a lease outlives its attempt.
        let lease = now + (self.config.timeout + Duration::from_secs(30)).as_millis() as i64;
        db::claim_due(&self.store, &self.config.worker_id, now, lease, n).await
    }

    /// One attempt, recorded (a failure to record leaves the lease to expire: the message is
    /// sent again, with its id).
    async fn attempt(&self, msg: db::Due) {
        let (attempt, took) = deliver::send(&self.client, &self.config, &msg).await;
        metrics::histogram!("openvle_webhook_delivery_duration_seconds").record(took.as_secs_f64());
        let now = chrono::Utc::now().timestamp_millis();
        let outcome = deliver::judge(&self.config, &msg, attempt, now);
        match &outcome {
            Outcome::Delivered => {
                metrics::counter!("openvle_webhook_delivered_total", "type" => msg.kind.clone())
                    .increment(1);
                tracing::debug!(message = %msg.id, event_id = %msg.event_id, kind = %msg.kind, "webhook delivered");
            }
            Outcome::Retry { error, .. } => {
                metrics::counter!("openvle_webhook_failed_total", "final" => "false").increment(1);
                tracing::info!(message = %msg.id, event_id = %msg.event_id, kind = %msg.kind, error = %error, "webhook not delivered; will retry");
            }
            Outcome::Dead { error } => {
                metrics::counter!("openvle_webhook_failed_total", "final" => "true").increment(1);
                tracing::warn!(message = %msg.id, event_id = %msg.event_id, kind = %msg.kind, error = %error, "webhook given up (dead): `openvle-moodle webhooks redeliver` sends it again");
            }
        }
        if let Err(e) = db::record(&self.store, &msg.id, &outcome, now).await {
            tracing::warn!(error = %e, message = %msg.id, "recording a webhook attempt failed; it will be sent again");
        }
    }
}
