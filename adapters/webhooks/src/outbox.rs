//! The outbox's reader: follows the global log from its own checkpoint (as the saga's reader
//! does, never through in-memory dispatch) and turns what it reads into messages, enqueued with
//! the checkpoint's move in one transaction: a crash loses nothing and enqueues nothing twice.
//!
//! For each OpenVLE event a page touches (its `event` and `moodle_sync` streams), the reader
//! folds the event's view as the API shows it ([`EventFold::view_at`]) after each commit (the
//! rows one command appended, recognised by their `command_id`) and compares its Moodle state
//! with the last one enqueued for the event (`webhook_event_state`): a difference is a
//! `moodle.<state>` message. Each saga `Parked` and `ParticipantParked` row is a message of its
//! own, placed before the state it leads to.
//!
//! Folds are kept in a bounded cache; an event not in it is folded again from its history in the
//! log (both streams, by the log's index on aggregate id), so memory stays flat.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::{MoodleSync, MoodleSyncEvent};
use projections::saga::SagaSettings;
use projections::view::{EventFold, MoodleState};
use store::{Store, StoredEvent};

use crate::db;
use crate::error::WebhookError;
use crate::message::{Change, Message};

/// Folds kept in memory (each an OpenVLE event's two streams folded).
const CACHE_CAPACITY: usize = 2048;

struct Cached {
    fold: EventFold,
    last_position: i64,
}

/// The reader. One per process; several over one PostgreSQL are safe (the checkpoint is moved by
/// compare-and-set, a reader that lost the race reads again).
pub struct Reader {
    store: Store,
    settings: SagaSettings,
    page: usize,
    cache: HashMap<String, Cached>,
}

fn is_history(aggregate_type: &str) -> bool {
    aggregate_type == VleEvent::TYPE || aggregate_type == MoodleSync::TYPE
}

fn apply(fold: &mut EventFold, e: &StoredEvent) -> Result<(), WebhookError> {
    let bad = |err: store::StoreError| WebhookError::Fold(err.to_string());
    if e.aggregate_type == VleEvent::TYPE {
        fold.apply_event(e.decode::<VleEvent>().map_err(bad)?);
    } else if e.aggregate_type == MoodleSync::TYPE {
        fold.apply_sync(e.decode::<MoodleSync>().map_err(bad)?, e.recorded_at);
    }
    Ok(())
}

/// The codes an event is parked with: its saga's and its participants' (as the status shows).
fn park_codes(sync: &MoodleSync) -> Vec<String> {
    let mut codes: Vec<String> = sync.parked.iter().map(|(_, c, _)| c.clone()).collect();
    for p in sync.participants.values() {
        if let Some((code, _)) = &p.parked {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        }
    }
    codes.sort();
    codes
}

fn state_of(name: &str) -> Option<MoodleState> {
    [
        MoodleState::Disabled,
        MoodleState::NotLinked,
        MoodleState::Pending,
        MoodleState::InSync,
        MoodleState::Failed,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
}

/// Whether `next` belongs to the same commit as `row` (one command's rows of one stream are
/// contiguous in the log).
fn same_commit(row: &StoredEvent, next: Option<&StoredEvent>) -> bool {
    match (next, row.meta("command_id")) {
        (Some(n), Some(cmd)) => {
            n.aggregate_id == row.aggregate_id
                && n.aggregate_type == row.aggregate_type
                && n.meta("command_id") == Some(cmd)
        }
        _ => false,
    }
}

impl Reader {
    pub fn new(store: Store, settings: SagaSettings, page: usize) -> Reader {
        Reader {
            store,
            settings,
            page: page.clamp(1, store::MAX_PAGE),
            cache: HashMap::new(),
        }
    }

    /// Reads the log from the checkpoint to the head, a page per transaction. Returns the number
    /// of messages enqueued.
    pub async fn feed(&mut self) -> Result<usize, WebhookError> {
        let mut enqueued = 0usize;
        loop {
            let from = db::checkpoint(&self.store).await?;
            let rows = self.store.read_all(from, self.page).await?;
            let Some(last) = rows.last() else {
                return Ok(enqueued);
            };
            let to = last.position;
            let (messages, states) = self.fold_page(&rows).await?;
            let now = chrono::Utc::now().timestamp_millis();
            if db::advance(&self.store, from, to, &messages, &states, now).await? {
                enqueued += messages.len();
                for m in &messages {
                    tracing::debug!(message = %m.id, event_id = %m.event_id, kind = %m.kind, "webhook enqueued");
                }
                if rows.len() < self.page {
                    return Ok(enqueued);
                }
            }
            // Lost the race with another reader: read again from its checkpoint.
        }
    }

    /// The messages of one page and the states they leave each event in.
    async fn fold_page(
        &mut self,
        rows: &[StoredEvent],
    ) -> Result<(Vec<Message>, Vec<(String, String, i64)>), WebhookError> {
        let mut touched: Vec<String> = Vec::new();
        for r in rows.iter().filter(|r| is_history(&r.aggregate_type)) {
            if !touched.contains(&r.aggregate_id) {
                touched.push(r.aggregate_id.clone());
            }
        }
        let mut last = db::last_states(&self.store, &touched).await?;
        let mut messages = Vec::new();
        let mut states: HashMap<String, (String, i64)> = HashMap::new();
        let now = chrono::Utc::now().timestamp_millis();
        for (i, row) in rows.iter().enumerate() {
            if !is_history(&row.aggregate_type) {
                continue;
            }
            let id = row.aggregate_id.clone();
            self.fold_up_to(row).await?;
            if row.aggregate_type == MoodleSync::TYPE {
                if let Some(change) = fact_of(row)? {
                    messages.push(change.message(&id, row.position, row.recorded_at));
                }
            }
            if same_commit(row, rows.get(i + 1)) {
                continue;
            }
            let Some(cached) = self.cache.get(&id) else {
                continue;
            };
            let Some(view) = cached.fold.view_at(&self.settings, Some(now)) else {
                continue;
            };
            let state = view.moodle.state;
            let previous = last.get(&id).and_then(|s| state_of(s));
            if previous == Some(state) {
                continue;
            }
            let change = Change::State {
                state,
                previous,
                course_id: view.moodle.course_id,
                codes: if state == MoodleState::Failed {
                    park_codes(&cached.fold.sync)
                } else {
                    Vec::new()
                },
                event_status: view.status.as_str().to_string(),
            };
            messages.push(change.message(&id, row.position, row.recorded_at));
            last.insert(id.clone(), state.as_str().to_string());
            states.insert(id, (state.as_str().to_string(), row.position));
        }
        if self.cache.len() > CACHE_CAPACITY {
            // Simple and bounded: forget everything; folds are rebuilt from the log on demand.
            self.cache.clear();
        }
        let states = states
            .into_iter()
            .map(|(id, (state, position))| (id, state, position))
            .collect();
        Ok((messages, states))
    }

    /// Makes the cached fold of `row`'s event include `row` (folding its earlier history first
    /// when it is not cached).
    async fn fold_up_to(&mut self, row: &StoredEvent) -> Result<(), WebhookError> {
        if !self.cache.contains_key(&row.aggregate_id) {
            let mut fold = EventFold::new();
            let mut last_position = 0;
            for earlier in self
                .store
                .read_event_history_before(&row.aggregate_id, row.position)
                .await?
            {
                apply(&mut fold, &earlier)?;
                last_position = earlier.position;
            }
            self.cache.insert(
                row.aggregate_id.clone(),
                Cached {
                    fold,
                    last_position,
                },
            );
        }
        if let Some(cached) = self.cache.get_mut(&row.aggregate_id) {
            // Already folded in (a page read again after a lost race): skip.
            if cached.last_position < row.position {
                apply(&mut cached.fold, row)?;
                cached.last_position = row.position;
            }
        }
        Ok(())
    }
}

/// The message a saga fact is on its own: a park of the whole event or of one participant.
fn fact_of(row: &StoredEvent) -> Result<Option<Change>, WebhookError> {
    if row.event_type != "Parked" && row.event_type != "ParticipantParked" {
        return Ok(None);
    }
    let event = row
        .decode::<MoodleSync>()
        .map_err(|e| WebhookError::Fold(e.to_string()))?;
    Ok(match event {
        MoodleSyncEvent::Parked { step, code, .. } => Some(Change::Parked { step, code }),
        MoodleSyncEvent::ParticipantParked {
            participant_id,
            code,
            ..
        } => Some(Change::ParticipantParked {
            participant_id,
            code,
        }),
        _ => None,
    })
}
