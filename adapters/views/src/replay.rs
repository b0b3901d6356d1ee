//! Rebuilding every read model from position 0 (the second meaning of "replay" in the design
//! notes: no Moodle call at all; this crate has no Moodle client).
//!
//! 1. Take the replay lock (one replay at a time; a dead replay's lock expires).
//! 2. Build shadow tables (`*_rebuild`) from position 0, streaming the log in pages: memory is
//!    one page plus a bounded fold cache, however long the log.
//! 3. Swap them in, in one transaction (drop the live tables, rename the shadows, set the
//!    checkpoint to where the build ended): readers see the old views or the new ones.
//! 4. Catch up the live views from there (events appended during the build).
//!
//! Safe while the engine serves: the live projector keeps serving the old tables during the
//! build; its next commit after the swap sees the checkpoint moved and re-reads from it.

use std::time::{Duration, Instant};

use projections::saga::SagaSettings;
use store::Store;

use crate::db::{self, SHADOW};
use crate::error::ViewsError;
use crate::fold::Folder;
use crate::follow::Follower;
use crate::{lock, page};

/// Tuning of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Events per page (read, folded and written per transaction).
    pub page_size: usize,
    /// OpenVLE events whose folds stay in memory.
    pub cache_capacity: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            page_size: 2000,
            cache_capacity: 10_000,
        }
    }
}

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPhase {
    /// Building the shadow tables.
    Building,
    /// Swapping them in.
    Swapping,
    /// Catching up the live views with what was appended meanwhile.
    CatchingUp,
    Done,
}

/// Reported after every page and at each phase change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    pub phase: ReplayPhase,
    /// Last position folded.
    pub position: i64,
    /// Head of the log when the replay started (it may grow meanwhile).
    pub head: i64,
    /// Events read so far.
    pub events: u64,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// Events folded into the shadow tables.
    pub events: u64,
    /// Position where the shadow build ended (the checkpoint set by the swap).
    pub shadow_end: i64,
    /// Events applied by the catch-up after the swap.
    pub caught_up: u64,
    pub elapsed: Duration,
}

fn holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Rebuilds the event views from position 0 and swaps them in; then catches up. `progress` is called after every page.
pub async fn replay(
    store: &Store,
    settings: &SagaSettings,
    options: &ReplayOptions,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<ReplayReport, ViewsError> {
    let started = Instant::now();
    db::check_schema(store).await?;
    let holder = holder();
    lock::take_replay_lock(store, &holder).await?;
    let result = build_and_swap(store, settings, options, &holder, &mut progress).await;
    if result.is_err() {
        if let Err(e) = db::drop_shadow(store).await {
            tracing::warn!(error = %e, "could not drop the shadow tables of the failed replay");
        }
    }
    lock::release_replay_lock(store, &holder).await;
    let (events, shadow_end) = result?;

    let head = store.head().await?;
    progress(&ReplayProgress {
        phase: ReplayPhase::CatchingUp,
        position: shadow_end,
        head,
        events,
    });
    let caught_up = Follower::new(
        store,
        settings.clone(),
        options.page_size,
        options.cache_capacity,
    )
    .follow()
    .await?;
    progress(&ReplayProgress {
        phase: ReplayPhase::Done,
        position: shadow_end.max(head),
        head,
        events: events + caught_up,
    });
    Ok(ReplayReport {
        events,
        shadow_end,
        caught_up,
        elapsed: started.elapsed(),
    })
}

async fn build_and_swap(
    store: &Store,
    settings: &SagaSettings,
    options: &ReplayOptions,
    holder: &str,
    progress: &mut impl FnMut(&ReplayProgress),
) -> Result<(u64, i64), ViewsError> {
    db::recreate_shadow(store).await?;
    let head = store.head().await?;
    let mut folder = Folder::new(store.clone(), settings.clone(), options.cache_capacity);
    let mut pager = store.pager(0, options.page_size.max(1));
    let mut events = 0u64;
    let mut last_beat = Instant::now();
    progress(&ReplayProgress {
        phase: ReplayPhase::Building,
        position: 0,
        head,
        events,
    });
    loop {
        let page = pager.next_page().await?;
        if page.is_empty() {
            break;
        }
        let out = folder.fold_page(&page).await?;
        page::write_page(store, SHADOW, &out).await?;
        events += page.len() as u64;
        if last_beat.elapsed() > Duration::from_secs(5) {
            lock::heartbeat(store, holder).await?;
            last_beat = Instant::now();
        }
        progress(&ReplayProgress {
            phase: ReplayPhase::Building,
            position: pager.position(),
            head,
            events,
        });
    }
    let end = pager.position();
    progress(&ReplayProgress {
        phase: ReplayPhase::Swapping,
        position: end,
        head,
        events,
    });
    db::swap_in_shadow(store, end, settings).await?;
    Ok((events, end))
}
