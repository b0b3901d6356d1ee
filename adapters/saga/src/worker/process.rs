//! One claim of one OpenVLE event: plan, call Moodle, record, until the plan is empty or
//! something stops it, then release the work row. The worker only reads, calls, records and
//! schedules here: every decision about a step's outcome (the facts of a failure, retry or park,
//! the backoff, what counts as an attempt) is `projections::saga::outcome`'s.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::{MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use projections::saga::outcome::{self, Interruption, Next, StepResult};
use projections::saga::{plan, Desired, Step};
use store::{CommandError, CommandMeta, StoreError};
use uuid::Uuid;

use super::Worker;
use crate::db::{self, Claim, Release};
use crate::exec;
use crate::SagaError;

/// How processing one claim ended (before the row is updated).
enum Ended {
    Next(Next),
    /// Another worker holds the row now: leave it alone.
    LeaseLost,
}

enum Recorded {
    Ok { fenced: bool },
    Refused(String),
    Conflict,
}

/// The work row's update for a decision (`Continue` never reaches here: it plans again).
fn release(next: Next, now_ms: i64) -> Release {
    match next {
        Next::Continue | Next::HandBack => Release::Abandon,
        Next::Done { state, reason } => Release::Done { state, reason },
        Next::Wait {
            at,
            attempts,
            reason,
        } => Release::RetryAt {
            at,
            attempts,
            reason,
        },
        Next::Retry {
            delay_ms,
            attempts,
            reason,
        } => Release::RetryAt {
            at: now_ms.saturating_add(delay_ms),
            attempts,
            reason,
        },
        Next::Park { reason } => Release::Parked { reason },
        Next::WakeAt { at, reason } => Release::WakeAt { at, reason },
    }
}

/// The random part of a backoff (see `projections::saga::retry`).
fn jitter() -> u64 {
    rand::random()
}

impl Worker {
    /// Processes one claim and updates its row.
    pub(super) async fn work(&self, claim: Claim) {
        let store = &self.inner.store;
        let worker = &self.inner.config.worker_id;
        let policy = self.inner.config.retry_policy();
        // Every line logged while the event is processed (the Moodle client's failed calls
        // included) names the event and the attempt. A span shows only when its level passes the
        // filter: at error level it reaches every line that any filter lets through.
        let span =
            tracing::error_span!("saga", event = %claim.event_id, attempt = claim.attempts + 1);
        let ended = match tracing::Instrument::instrument(self.process(&claim), span).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(event = %claim.event_id, error = %e, "saga: processing failed");
                let why = match &e {
                    SagaError::Store(StoreError::Decode { .. }) => {
                        Interruption::LogUnreadable(e.to_string())
                    }
                    _ => Interruption::Error(e.to_string()),
                };
                Ended::Next(outcome::interrupted(why, claim.attempts, &policy, jitter()))
            }
        };
        let release = match ended {
            Ended::LeaseLost => {
                tracing::warn!(event = %claim.event_id, "saga: lease lost to another worker; leaving the event to it");
                return;
            }
            Ended::Next(next) => release(next, self.inner.config.clock.now_ms()),
        };
        match &release {
            Release::Done { .. } => self.inner.counters.done.fetch_add(1, Ordering::Relaxed),
            Release::RetryAt { .. } => self.inner.counters.retries.fetch_add(1, Ordering::Relaxed),
            Release::Parked { .. } => self.inner.counters.parked.fetch_add(1, Ordering::Relaxed),
            Release::WakeAt { .. } | Release::Abandon => 0,
        };
        if let Err(e) = db::release(store, worker, &claim, &release).await {
            tracing::warn!(event = %claim.event_id, error = %e, "saga: cannot release the claim (its lease will expire)");
        }
    }

    /// Plan, call, record, until the plan is empty or something stops it.
    async fn process(&self, claim: &Claim) -> Result<Ended, SagaError> {
        let store = &self.inner.store;
        let cfg = &self.inner.config;
        let policy = cfg.retry_policy();
        let interrupted = |why| {
            Ok(Ended::Next(outcome::interrupted(
                why,
                claim.attempts,
                &policy,
                jitter(),
            )))
        };
        let id = claim.event_id.as_str();
        let mut steps = 0u32;
        // An announced duplication is called before a graceful stop hands the event back: the
        // next process would otherwise have to wait out the announcement.
        let mut call_due = false;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) && !call_due {
                return Ok(Ended::Next(Next::HandBack));
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
            let desired = Desired::fold(id, events).at(cfg.clock.now_ms());
            let (recorded, version) = store.load::<MoodleSync>(id).await?.unwrap_or_default();
            if recorded.parked.is_some() && !projections::saga::park_stands(&desired, &recorded) {
                // A change since the park: recorded first, so the record, the status and the
                // views no longer show the park; then the planner looks again.
                let lifted = MoodleSyncEvent::ParkLifted {
                    caused_by: desired.park_lift.map(|c| c.event_id).unwrap_or_default(),
                };
                let meta = CommandMeta::new(format!("saga:{}", cfg.worker_id));
                match store
                    .execute::<MoodleSync>(
                        id,
                        MoodleSyncCommand::Record(vec![lifted.clone()]),
                        &meta,
                    )
                    .await
                {
                    Ok(_) => super::effects::log(id, &[lifted]),
                    Err(CommandError::Conflict) => {
                        return interrupted(Interruption::RecordConflict)
                    }
                    Err(CommandError::Store(e)) => return Err(e.into()),
                    Err(e) => return interrupted(Interruption::RecordRefused(e.to_string())),
                }
                continue;
            }
            let plan = plan(&desired, &recorded, &self.inner.settings);
            let Some(step) = plan.next() else {
                return Ok(Ended::Next(outcome::idle(&plan, &recorded)));
            };
            if steps >= cfg.max_steps_per_claim {
                let step = step.name();
                return interrupted(Interruption::StepBudget { step, steps });
            }
            steps += 1;
            let Some(client) = &self.inner.moodle else {
                return interrupted(Interruption::NoClient);
            };

            let out = exec::run_step(client, cfg, &self.inner.steps, step).await;
            let failure = out.failure.map(|f| outcome::settle(f, &recorded));
            let result = StepResult {
                step,
                failure: failure.as_ref(),
                wait_until: out.wait_until.as_ref().map(|(at, r)| (*at, r.as_str())),
            };
            self.inner.counters.steps.fetch_add(1, Ordering::Relaxed);
            let label = outcome::outcome_label(&result);
            metrics::counter!("openvle_saga_steps_total", "step" => step.name(), "outcome" => label)
                .increment(1);

            let cause = step.cause();
            let attempt = outcome::attempt_of(&recorded);
            let mut facts = out.facts;
            call_due = outcome::call_due(&facts);
            if let Some(f) = &failure {
                tracing::warn!(
                    event = id,
                    step = step.name(),
                    code = %f.code,
                    attempt,
                    transient = f.transient,
                    "moodle step failed: {}",
                    f.message
                );
                facts.extend(outcome::failure_facts(
                    step,
                    f,
                    attempt,
                    cfg.max_attempts,
                    desired.sequence,
                ));
            } else {
                tracing::debug!(
                    event = id,
                    step = step.name(),
                    items = step.len(),
                    "moodle step done"
                );
            }
            let correlation = correlation.get(&cause.event_id).copied();
            let fenced = match self
                .record(id, version, facts, cause.event_id, correlation, step)
                .await?
            {
                Recorded::Ok { fenced } => fenced,
                Recorded::Refused(reason) => {
                    return interrupted(Interruption::RecordRefused(reason))
                }
                Recorded::Conflict => return interrupted(Interruption::RecordConflict),
            };
            match outcome::after_step(&result, fenced, attempt, claim.attempts, &policy, jitter()) {
                Next::Continue => continue,
                next => {
                    if let Next::Wait { reason, .. } = &next {
                        tracing::info!(event = id, step = step.name(), "{reason}");
                    }
                    return Ok(Ended::Next(next));
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
        let logged = facts.clone();
        match store
            .execute::<MoodleSync>(id, MoodleSyncCommand::Record(facts), &meta)
            .await
        {
            Ok(_) => {
                super::effects::log(id, &logged);
                Ok(Recorded::Ok { fenced })
            }
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
                    at_sequence: None,
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
}
