//! The checkpointed reader: the global log → one work row per OpenVLE event touched, the
//! checkpoint moved in the same transaction (so no event is ever missed or queued twice), and the
//! backfill of events deployed while the integration was off.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::MoodleSync;

use super::Worker;
use crate::db::{self, Wanted};
use crate::SagaError;

/// Facts of the saga's record that hand a parked event back to the workers: an operator's retry.
const RESUMING: &[&str] = &["Resumed", "ParticipantResumed"];

/// Domain events that lift a parked saga (`projections::saga::park_stands`, which decides
/// whether the park still holds): the work row is queued again for the planner to look.
const LIFTING: &[&str] = &["EventChanged", "TemplateChanged", "Ended", "Deleted"];

impl Worker {
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
                    let sync = row.aggregate_type == <MoodleSync as Aggregate>::TYPE;
                    let resume = sync && RESUMING.contains(&row.event_type.as_str());
                    let vle = row.aggregate_type == <VleEvent as Aggregate>::TYPE;
                    let lift = vle && LIFTING.contains(&row.event_type.as_str());
                    if vle || resume {
                        let w = wanted.entry(row.aggregate_id.clone()).or_insert(Wanted {
                            event_id: row.aggregate_id.clone(),
                            position: row.position,
                            resume: false,
                            lift: false,
                        });
                        w.position = w.position.max(row.position);
                        w.resume |= resume;
                        w.lift |= lift;
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
}
