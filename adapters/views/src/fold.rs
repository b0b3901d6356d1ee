//! Folding pages of the log into event-view rows, shared by the live projector and a replay's
//! shadow build (no I/O but reading the log for folds not in the cache).
//!
//! Folds are kept in a bounded in-memory cache (an OpenVLE event's both streams folded up to
//! the last position applied); a fold not in the cache is rebuilt from the log up to the event
//! being applied, so memory stays flat however long the log and however many events it holds.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::MoodleSync;
use projections::saga::SagaSettings;
use projections::view::{EventFold, EventView};
use store::{Store, StoredEvent};

use crate::db;
use crate::error::ViewsError;

struct Cached {
    fold: EventFold,
    /// Highest position of the event's streams folded in.
    last_position: i64,
    tick: u64,
}

/// Folds of recently seen OpenVLE events, evicting the least recently used half when full.
struct FoldCache {
    map: HashMap<String, Cached>,
    capacity: usize,
    tick: u64,
}

impl FoldCache {
    fn new(capacity: usize) -> Self {
        FoldCache {
            map: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        }
    }

    fn evict_if_full(&mut self) {
        if self.map.len() <= self.capacity {
            return;
        }
        let mut ticks: Vec<u64> = self.map.values().map(|c| c.tick).collect();
        ticks.sort_unstable();
        let keep = self.capacity / 2;
        let cutoff = ticks[ticks.len() - keep.max(1)];
        self.map.retain(|_, c| c.tick >= cutoff);
    }
}

/// An `event_views` row ready to write: the view rendered with the projector's settings (for
/// readers that want it as is) and the fold itself with the position it reached (for readers
/// that apply the tail and render with their own settings).
pub(crate) struct ViewRow {
    pub(crate) event_id: String,
    pub(crate) view: EventView,
    /// The [`EventFold`] as JSON text.
    pub(crate) fold: String,
    pub(crate) last_position: i64,
}

/// What one page produced.
#[derive(Default)]
pub(crate) struct PageOutput {
    pub(crate) views: Vec<ViewRow>,
}

/// Whether a stream belongs to an OpenVLE event's history (what its view folds).
pub(crate) fn is_history_stream(aggregate_type: &str) -> bool {
    aggregate_type == VleEvent::TYPE || aggregate_type == MoodleSync::TYPE
}

/// Applies one stored event of an OpenVLE event's history to its fold (other streams are
/// ignored): the one place a stored row turns into a fold step.
pub(crate) fn apply(fold: &mut EventFold, e: &StoredEvent) -> Result<(), ViewsError> {
    if e.aggregate_type == VleEvent::TYPE {
        fold.apply_event(e.decode::<VleEvent>()?);
    } else if e.aggregate_type == MoodleSync::TYPE {
        fold.apply_sync(e.decode::<MoodleSync>()?, e.recorded_at);
    }
    Ok(())
}

/// Folds pages of the log into rows.
pub(crate) struct Folder {
    store: Store,
    settings: SagaSettings,
    cache: FoldCache,
}

impl Folder {
    pub(crate) fn new(store: Store, settings: SagaSettings, cache_capacity: usize) -> Self {
        Folder {
            store,
            settings,
            cache: FoldCache::new(cache_capacity),
        }
    }

    /// Forgets every cached fold (they are rebuilt from the log on demand).
    pub(crate) fn clear(&mut self) {
        self.cache.map.clear();
    }

    /// Applies a page (positions ascending) and returns the rows to write.
    pub(crate) async fn fold_page(
        &mut self,
        page: &[StoredEvent],
    ) -> Result<PageOutput, ViewsError> {
        let mut out = PageOutput::default();
        let mut touched: Vec<String> = Vec::new();
        for e in page {
            if !is_history_stream(&e.aggregate_type) {
                continue;
            }
            self.cache.tick += 1;
            let tick = self.cache.tick;
            if !self.cache.map.contains_key(&e.aggregate_id) {
                let mut fold = EventFold::new();
                let mut last_position = 0;
                for earlier in db::history_before(&self.store, &e.aggregate_id, e.position).await? {
                    apply(&mut fold, &earlier)?;
                    last_position = earlier.position;
                }
                self.cache.map.insert(
                    e.aggregate_id.clone(),
                    Cached {
                        fold,
                        last_position,
                        tick,
                    },
                );
            }
            if let Some(cached) = self.cache.map.get_mut(&e.aggregate_id) {
                cached.tick = tick;
                // Already folded in (the checkpoint was moved back by a swap): skip.
                if cached.last_position < e.position {
                    apply(&mut cached.fold, e)?;
                    cached.last_position = e.position;
                }
            }
            if !touched.contains(&e.aggregate_id) {
                touched.push(e.aggregate_id.clone());
            }
        }
        for id in touched {
            if let Some(cached) = self.cache.map.get(&id) {
                if let Some(view) = cached
                    .fold
                    .view_at(&self.settings, Some(crate::db::now_ms()))
                {
                    out.views.push(ViewRow {
                        event_id: id,
                        view,
                        fold: serde_json::to_string(&cached.fold)?,
                        last_position: cached.last_position,
                    });
                }
            }
        }
        self.cache.evict_if_full();
        Ok(out)
    }
}
