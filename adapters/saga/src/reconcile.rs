//! Reconcile Moodle (the third meaning of "replay"): fold the log into the Moodle state it
//! implies, read the state Moodle holds, show the difference, and with consent converge it through
//! the saga, recording what was seen and what was done.
//!
//! Per OpenVLE event with a Moodle side (deployed from an environment with a template course):
//!
//! 1. **Observe** (read-only, at most five calls): the recorded course by id, the course by its
//!    shortname `ovle-<id>` when the recorded one is absent (or none is recorded), the course's
//!    enrolments (all, then active only: the difference is the suspended ones, roles included),
//!    and whether the recorded Moodle accounts still exist.
//! 2. **Compare** ([`projections::saga::reconcile`], pure): drift rows
//!    (`event_id, kind, what, expected, actual`) and corrections.
//! 3. By [`ReconcileMode`]:
//!    - `DryRun`: nothing is written (the command without `--apply`).
//!    - `Report` (the scheduled reconcile without `MOODLE_RECONCILE_APPLY`): records
//!      `DriftObserved { applied: false }` when the drift differs from the last one recorded, so
//!      that the event view shows it; Moodle is not touched.
//!    - `Apply`: records `DriftObserved { applied: true }` and the corrections (facts about what
//!      Moodle holds: `CourseLost`, `UserLinkLost`, `Unenrolled`, `Suspended`, `Enrolled`,
//!      `CourseShown`/`CourseHidden`, an adopted `CourseDuplicated`) in one append, fenced against
//!      a concurrent writer; queues the event's work row and runs the worker's step loop on it
//!      once (the planner turns the new recorded state into the Moodle calls, each recorded as a
//!      saga event caused by the domain event whose state it restores); observes again and
//!      records the drift that remains (none, normally).
//!
//! Events deployed while the integration was switched off are covered twice: the worker queues
//! them when it starts enabled (see `Worker::feed`), and reconcile shows them as `course_missing`
//! and, with `--apply`, queues and provisions them.

//!
//! Files: [`observe`] (step 1's calls), [`report`] (what a pass says, the table and the gauge),
//! [`schedule`] (the scheduled reconcile's settings); here the pass itself (steps 2 and 3).

use cqrs_es::Aggregate;
use uuid::Uuid;

use domain::event::VleEvent;
use domain::moodle_sync::{DriftNote, MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use moodle::{MoodleClient, MoodleError};
use projections::saga::{reconcile, to_observe, Desired, DriftRow};
use store::{CommandError, CommandMeta};

use crate::{db, SagaError, Worker};

mod observe;
mod report;
mod schedule;

use observe::observe;
use report::publish_drift;
pub use report::{EventReconcile, ReconcileMode, ReconcileReport};
pub use schedule::{ReconcileConfigError, ReconcileSchedule};

/// What one comparison saw (with the record's version it was made against).
struct Compared {
    recorded: MoodleSync,
    version: u64,
    rows: Vec<DriftRow>,
    corrections: Vec<MoodleSyncEvent>,
    /// The domain event the event's desired state stands on (causation of the record).
    cause: Uuid,
}

impl Worker {
    /// One reconcile pass over `event` (or every OpenVLE event with a Moodle side).
    ///
    /// Errors only for the store; Moodle failures are reported per event (`errors`).
    pub async fn reconcile(
        &self,
        event: Option<&str>,
        mode: ReconcileMode,
    ) -> Result<ReconcileReport, SagaError> {
        if !self.settings().enabled {
            return Err(SagaError::Disabled);
        }
        let Some(client) = self.moodle() else {
            return Err(SagaError::Disabled);
        };
        db::ensure_schema(self.store()).await?;
        let ids: Vec<String> = match event {
            Some(id) => vec![id.to_string()],
            None => db::vle_events(self.store(), None)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        };
        let mut report = ReconcileReport {
            mode,
            checked: 0,
            drift: Vec::new(),
            remaining: Vec::new(),
            events: Vec::new(),
            errors: 0,
        };
        for id in &ids {
            let compared = match self.compare(client, id).await {
                Ok(None) => continue,
                Ok(Some(c)) => c,
                Err(Failed::Store(e)) => return Err(e),
                Err(Failed::Moodle(e)) => {
                    report.checked += 1;
                    report.errors += 1;
                    report.events.push(EventReconcile {
                        event_id: id.clone(),
                        drift: Vec::new(),
                        corrections: 0,
                        remaining: Vec::new(),
                        saga_state: None,
                        note: Some(format!("could not read Moodle: {e}")),
                    });
                    continue;
                }
            };
            report.checked += 1;
            let outcome = match mode {
                ReconcileMode::DryRun => (!compared.rows.is_empty()).then(|| EventReconcile {
                    event_id: id.clone(),
                    remaining: compared.rows.clone(),
                    drift: compared.rows,
                    corrections: 0,
                    saga_state: None,
                    note: None,
                }),
                ReconcileMode::Report => {
                    let notes = notes(&compared.rows);
                    if notes != compared.recorded.drift {
                        self.record_observation(id, &compared, notes, false, Vec::new())
                            .await?;
                    }
                    (!compared.rows.is_empty()).then(|| EventReconcile {
                        event_id: id.clone(),
                        remaining: compared.rows.clone(),
                        drift: compared.rows,
                        corrections: 0,
                        saga_state: None,
                        note: None,
                    })
                }
                ReconcileMode::Apply => self.apply(client, id, compared).await?,
            };
            if let Some(o) = outcome {
                report.drift.extend(o.drift.iter().cloned());
                report.remaining.extend(o.remaining.iter().cloned());
                report.events.push(o);
            }
        }
        publish_drift(&report.remaining_by_kind());
        Ok(report)
    }

    /// Observes and compares one event; None when it has no Moodle side.
    async fn compare(&self, client: &MoodleClient, id: &str) -> Result<Option<Compared>, Failed> {
        let store = self.store();
        let rows = store
            .read_stream(<VleEvent as Aggregate>::TYPE, id)
            .await
            .map_err(|e| Failed::Store(e.into()))?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let e = row
                .decode::<VleEvent>()
                .map_err(|e| Failed::Store(e.into()))?;
            events.push((row.sequence.max(0) as u64, e));
        }
        let desired = Desired::fold(id, events).at(self.config().clock.now_ms());
        let (recorded, version) = store
            .load::<MoodleSync>(id)
            .await
            .map_err(|e| Failed::Store(e.into()))?
            .unwrap_or_default();
        let Some(what) = to_observe(&desired, &recorded, self.settings()) else {
            return Ok(None);
        };
        let observed = observe(client, &what).await.map_err(Failed::Moodle)?;
        let r = reconcile(&desired, &recorded, &observed, self.settings());
        Ok(Some(Compared {
            recorded,
            version,
            rows: r.rows,
            corrections: r.corrections,
            cause: desired.status_cause().event_id,
        }))
    }

    /// Records `DriftObserved` (and the corrections after it) in one append, unless the saga's
    /// record moved since the comparison. Returns the position appended, or None when fenced.
    async fn record_observation(
        &self,
        id: &str,
        compared: &Compared,
        drift: Vec<DriftNote>,
        applied: bool,
        corrections: Vec<MoodleSyncEvent>,
    ) -> Result<Option<i64>, SagaError> {
        let store = self.store();
        let current = store
            .last_sequence(<MoodleSync as Aggregate>::TYPE, id)
            .await?;
        if current != compared.version {
            return Ok(None);
        }
        let by = format!("reconcile:{}", self.config().worker_id);
        let mut facts = vec![MoodleSyncEvent::DriftObserved {
            drift,
            applied,
            by: by.clone(),
        }];
        facts.extend(corrections);
        let causation = (!compared.cause.is_nil()).then_some(compared.cause);
        let meta = CommandMeta::new(by).with_correlation(Uuid::new_v4(), causation);
        match store
            .execute::<MoodleSync>(id, MoodleSyncCommand::Record(facts), &meta)
            .await
        {
            Ok(appended) => Ok(Some(match appended.last_position() {
                Some(p) => p,
                None => store.head().await?,
            })),
            Err(CommandError::Store(e)) => Err(e.into()),
            Err(CommandError::Conflict) => Ok(None),
            Err(CommandError::Rejected(e)) => Err(SagaError::Record(e.to_string())),
        }
    }

    /// Records the drift and its corrections, lets the saga converge, observes again.
    async fn apply(
        &self,
        client: &MoodleClient,
        id: &str,
        compared: Compared,
    ) -> Result<Option<EventReconcile>, SagaError> {
        if compared.rows.is_empty() {
            if !compared.recorded.drift.is_empty() {
                self.record_observation(id, &compared, Vec::new(), true, Vec::new())
                    .await?;
            }
            return Ok(None);
        }
        let mut outcome = EventReconcile {
            event_id: id.to_string(),
            drift: compared.rows.clone(),
            corrections: compared.corrections.len(),
            remaining: compared.rows.clone(),
            saga_state: None,
            note: None,
        };
        let drift = notes(&compared.rows);
        let corrections = compared.corrections.clone();
        let Some(position) = self
            .record_observation(id, &compared, drift, true, corrections)
            .await?
        else {
            outcome.corrections = 0;
            outcome.note =
                Some("the saga recorded something meanwhile; nothing applied: run again".into());
            return Ok(Some(outcome));
        };
        db::touch(self.store(), id, position).await?;
        let state = self.process_event(id).await?;
        // Look again: what is left (normally nothing).
        match self.compare(client, id).await {
            Ok(Some(after)) => {
                let left = notes(&after.rows);
                if left != after.recorded.drift {
                    self.record_observation(id, &after, left, false, Vec::new())
                        .await?;
                }
                outcome.remaining = after.rows;
            }
            Ok(None) => outcome.remaining.clear(),
            Err(Failed::Store(e)) => return Err(e),
            Err(Failed::Moodle(e)) => {
                outcome.note = Some(format!("could not read Moodle after converging: {e}"))
            }
        }
        if let Some(db::WorkState {
            state,
            reason,
            parked,
            done,
        }) = state
        {
            if !outcome.remaining.is_empty() && outcome.note.is_none() {
                outcome.note = Some(match (parked, done, &reason) {
                    (true, _, Some(r)) => format!("the saga is parked ({r}); run `retry`"),
                    (true, _, None) => "the saga is parked; run `retry`".to_string(),
                    (false, false, Some(r)) => {
                        format!("the saga will retry ({r}); a running worker finishes it")
                    }
                    _ => format!("the saga's state is {state}"),
                });
            }
            outcome.saga_state = Some(state);
        }
        Ok(Some(outcome))
    }

    /// The scheduled pass: logs, publishes the gauge, never fails the worker.
    pub(crate) async fn scheduled_reconcile(self, apply: bool) {
        let mode = if apply {
            ReconcileMode::Apply
        } else {
            ReconcileMode::Report
        };
        match self.reconcile(None, mode).await {
            Ok(report) => {
                if report.drift.is_empty() {
                    tracing::debug!(checked = report.checked, "scheduled reconcile: no drift");
                } else {
                    tracing::warn!(
                        checked = report.checked,
                        drift = report.drift.len(),
                        remaining = report.remaining.len(),
                        applied = apply,
                        "scheduled reconcile: Moodle differs from the log"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduled reconcile failed (will run again)"),
        }
    }
}

enum Failed {
    Store(SagaError),
    Moodle(MoodleError),
}

fn notes(rows: &[DriftRow]) -> Vec<DriftNote> {
    rows.iter().map(|r| r.note.clone()).collect()
}
