//! The projector: follows the global log from the views' checkpoint, in pages, and applies each
//! page to the read models and advances the checkpoint in one transaction.
//!
//! Exactly-once for the views: the commit of a page compares the checkpoint it started from
//! with the stored one (row-locked on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and writes
//! nothing when another writer (a second projector, or a replay's swap) moved it; the page is
//! then read again from the new checkpoint. Rows also carry the last position folded into them
//! and never go backwards.
//!
//! Folds are kept in a bounded in-memory cache (an OpenVLE event's both streams folded up to
//! the last position applied); a fold not in the cache is rebuilt from the log up to the event
//! being applied, so memory stays flat however long the log and however many events it holds.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use cqrs_es::Aggregate;
use domain::event::VleEvent;
use domain::moodle_sync::MoodleSync;
use projections::saga::SagaSettings;
use projections::view::{EnrolmentViewState, EventFold, EventView};
use sqlx::types::Json;
use sqlx::QueryBuilder;
use store::{DbPool, Store, StoredEvent};

use crate::db::{self, Tables, CHECKPOINT, LIVE};
use crate::error::ViewsError;

/// Tuning of a [`Projector`]; `Default` suits the server.
#[derive(Debug, Clone)]
pub struct ProjectorOptions {
    /// Events read and committed per transaction (clamped to the store's `MAX_PAGE`).
    pub page_size: usize,
    /// OpenVLE events whose folds stay in memory between pages.
    pub cache_capacity: usize,
    /// How long `run_projector` sleeps when caught up.
    pub poll_interval: Duration,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            page_size: 1000,
            cache_capacity: 10_000,
            poll_interval: Duration::from_millis(500),
        }
    }
}

struct Cached {
    fold: EventFold,
    /// Highest position of the event's streams folded in.
    last_position: i64,
    tick: u64,
}

/// Folds of recently seen OpenVLE events, evicting the least recently used half when full.
pub(crate) struct FoldCache {
    map: HashMap<String, Cached>,
    capacity: usize,
    tick: u64,
}

impl FoldCache {
    pub(crate) fn new(capacity: usize) -> Self {
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

/// A view and the Moodle-side row derived from it, ready to write.
pub(crate) struct ViewRow {
    event_id: String,
    view: EventView,
    last_position: i64,
    shortname: Option<String>,
    course_deleted: bool,
}

/// An `audit_index` row.
pub(crate) struct AuditRow {
    event_id: String,
    position: i64,
    stream: String,
    event_type: String,
}

/// What one page produced.
#[derive(Default)]
pub(crate) struct PageOutput {
    pub(crate) views: Vec<ViewRow>,
    pub(crate) audit: Vec<AuditRow>,
}

/// Folds pages of the log into rows (no I/O but reading the log for cache misses).
pub(crate) struct Folder {
    store: Store,
    settings: SagaSettings,
    cache: FoldCache,
}

fn is_history_stream(aggregate_type: &str) -> bool {
    aggregate_type == VleEvent::TYPE || aggregate_type == MoodleSync::TYPE
}

fn apply(fold: &mut EventFold, e: &StoredEvent) -> Result<(), ViewsError> {
    if e.aggregate_type == VleEvent::TYPE {
        fold.apply_event(e.decode::<VleEvent>()?);
    } else if e.aggregate_type == MoodleSync::TYPE {
        fold.apply_sync(e.decode::<MoodleSync>()?, e.recorded_at);
    }
    Ok(())
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
            out.audit.push(AuditRow {
                event_id: e.aggregate_id.clone(),
                position: e.position,
                stream: e.aggregate_type.clone(),
                event_type: e.event_type.clone(),
            });
        }
        for id in touched {
            if let Some(cached) = self.cache.map.get(&id) {
                if let Some(view) = cached.fold.view(&self.settings) {
                    out.views.push(ViewRow {
                        event_id: id,
                        view,
                        last_position: cached.last_position,
                        shortname: cached.fold.sync.shortname.clone(),
                        course_deleted: cached.fold.sync.course_deleted,
                    });
                }
            }
        }
        self.cache.evict_if_full();
        Ok(out)
    }
}

/// Rows per multi-row INSERT (well under SQLite's and PostgreSQL's bound-parameter limits).
const CHUNK: usize = 500;

fn state_str(view: &EventView) -> String {
    match serde_json::to_value(view.moodle.state) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{:?}", view.moodle.state),
    }
}

/// Writes a page's rows into `tables` on an open transaction or connection.
macro_rules! write_rows {
    ($conn:expr, $tables:expr, $out:expr) => {{
        let tables: Tables = $tables;
        let out: &PageOutput = $out;
        for chunk in out.views.chunks(CHUNK) {
            let mut qb = QueryBuilder::new(format!(
                "INSERT INTO {} (event_id, view, last_position) ",
                tables.event_views
            ));
            let mut json = Vec::with_capacity(chunk.len());
            for r in chunk {
                json.push(serde_json::to_value(&r.view)?);
            }
            qb.push_values(chunk.iter().zip(json), |mut b, (r, v)| {
                b.push_bind(r.event_id.as_str())
                    .push_bind(Json(v))
                    .push_bind(r.last_position);
            });
            qb.push(format!(
                " ON CONFLICT (event_id) DO UPDATE SET view = excluded.view, \
                 last_position = excluded.last_position \
                 WHERE excluded.last_position >= {}.last_position",
                tables.event_views
            ));
            qb.build().execute(&mut *$conn).await?;

            let mut qb = QueryBuilder::new(format!(
                "INSERT INTO {} (event_id, course_id, shortname, visible, deleted, state, \
                 pending_steps, enrolled, last_error, last_position) ",
                tables.moodle_courses
            ));
            qb.push_values(chunk, |mut b, r| {
                let m = &r.view.moodle;
                let enrolled = m
                    .enrolments
                    .iter()
                    .filter(|e| e.state == EnrolmentViewState::Enrolled)
                    .count() as i64;
                b.push_bind(r.event_id.as_str())
                    .push_bind(m.course_id)
                    .push_bind(r.shortname.clone())
                    .push_bind(m.course_visible)
                    .push_bind(r.course_deleted)
                    .push_bind(state_str(&r.view))
                    .push_bind(i64::try_from(m.pending_steps).unwrap_or(i64::MAX))
                    .push_bind(enrolled)
                    .push_bind(m.last_error.as_ref().map(|e| e.code.clone()))
                    .push_bind(r.last_position);
            });
            qb.push(format!(
                " ON CONFLICT (event_id) DO UPDATE SET course_id = excluded.course_id, \
                 shortname = excluded.shortname, visible = excluded.visible, \
                 deleted = excluded.deleted, state = excluded.state, \
                 pending_steps = excluded.pending_steps, enrolled = excluded.enrolled, \
                 last_error = excluded.last_error, last_position = excluded.last_position \
                 WHERE excluded.last_position >= {}.last_position",
                tables.moodle_courses
            ));
            qb.build().execute(&mut *$conn).await?;
        }
        for chunk in out.audit.chunks(CHUNK) {
            let mut qb = QueryBuilder::new(format!(
                "INSERT INTO {} (event_id, position, stream, event_type) ",
                tables.audit_index
            ));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.event_id.as_str())
                    .push_bind(r.position)
                    .push_bind(r.stream.as_str())
                    .push_bind(r.event_type.as_str());
            });
            qb.push(" ON CONFLICT (event_id, position) DO NOTHING");
            qb.build().execute(&mut *$conn).await?;
        }
    }};
}

/// Writes rows into `tables` in one transaction, without a checkpoint (a replay's shadow build).
pub(crate) async fn write_page(
    store: &Store,
    tables: Tables,
    out: &PageOutput,
) -> Result<(), ViewsError> {
    if out.views.is_empty() && out.audit.is_empty() {
        return Ok(());
    }
    match store.pool() {
        DbPool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            write_rows!(tx, tables, out);
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            write_rows!(tx, tables, out);
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Writes a page's rows into the live tables and moves the checkpoint from `from` to `to`, in
/// one transaction. `Ok(false)`: the checkpoint was no longer `from`; nothing was written.
async fn commit_page(
    store: &Store,
    from: i64,
    to: i64,
    settings: &str,
    out: &PageOutput,
) -> Result<bool, ViewsError> {
    let select = "SELECT position FROM views_checkpoint WHERE name = $1";
    let upsert = "INSERT INTO views_checkpoint (name, position, settings, updated_at_ms) \
                  VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
                  SET position = excluded.position, settings = excluded.settings, \
                  updated_at_ms = excluded.updated_at_ms";
    macro_rules! body {
        ($tx:expr, $select:expr) => {{
            let current: Option<i64> = sqlx::query_scalar($select)
                .bind(CHECKPOINT)
                .fetch_optional(&mut *$tx)
                .await?;
            if current.unwrap_or(0) != from {
                $tx.rollback().await?;
                return Ok(false);
            }
            write_rows!($tx, LIVE, out);
            sqlx::query(upsert)
                .bind(CHECKPOINT)
                .bind(to)
                .bind(settings)
                .bind(db::now_ms())
                .execute(&mut *$tx)
                .await?;
            $tx.commit().await?;
        }};
    }
    match store.pool() {
        DbPool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            body!(tx, select);
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            body!(tx, &format!("{select} FOR UPDATE"));
        }
    }
    Ok(true)
}

/// Follows the log into the live read models. Keep one per process and call
/// [`catch_up`](Projector::catch_up) repeatedly (or use [`run_projector`]): its fold cache
/// makes each page cost only the page.
pub struct Projector {
    store: Store,
    settings: SagaSettings,
    settings_json: String,
    options: ProjectorOptions,
    folder: Folder,
    /// The position through which the cached folds have seen every event (the end of the last
    /// page folded). When the checkpoint is found beyond it (another writer advanced the
    /// views), the cache may miss events and is dropped; when found before it (a replay's
    /// swap moved it back), cached folds skip what they already hold.
    folded_upto: i64,
}

impl Projector {
    pub fn new(store: &Store, settings: SagaSettings, options: ProjectorOptions) -> Self {
        Projector {
            folder: Folder::new(store.clone(), settings.clone(), options.cache_capacity),
            store: store.clone(),
            settings_json: serde_json::to_string(&settings.view_fingerprint()).unwrap_or_default(),
            settings,
            options,
            folded_upto: 0,
        }
    }

    /// Applies everything after the checkpoint, page by page; returns the number of log events
    /// read and committed. When the views were computed with other settings (or by an older
    /// binary that did not record them), rebuilds them first with [`crate::replay`].
    pub async fn catch_up(&mut self) -> Result<u64, ViewsError> {
        let (position, recorded) = db::read_checkpoint(&self.store).await?;
        let stale = match recorded {
            Some(s) => s != self.settings.view_fingerprint(),
            None => position > 0,
        };
        if stale {
            tracing::info!(
                "view settings changed since the views were built: rebuilding them (replay)"
            );
            let report = crate::replay::replay(
                &self.store,
                &self.settings,
                &crate::replay::ReplayOptions {
                    page_size: self.options.page_size,
                    cache_capacity: self.options.cache_capacity,
                },
                |_| {},
            )
            .await?;
            // The replay's own catch-up used its own cache; start this one afresh.
            self.folder.clear();
            return Ok(report.events + report.caught_up);
        }
        self.follow().await
    }

    /// Pages from the checkpoint to the head, without the settings check.
    pub(crate) async fn follow(&mut self) -> Result<u64, ViewsError> {
        let mut total = 0u64;
        loop {
            let (from, _) = db::read_checkpoint(&self.store).await?;
            let page = self
                .store
                .read_all(from, self.options.page_size.max(1))
                .await?;
            let Some(last) = page.last() else {
                return Ok(total);
            };
            let to = last.position;
            if from > self.folded_upto {
                self.folder.clear();
            }
            self.folded_upto = to;
            let out = self.folder.fold_page(&page).await?;
            if commit_page(&self.store, from, to, &self.settings_json, &out).await? {
                total += page.len() as u64;
            } else {
                tracing::debug!(
                    from,
                    "views checkpoint moved under the projector; re-reading"
                );
            }
        }
    }
}

/// Brings the live read models up to the head of the log once (a fresh [`Projector`]); returns
/// the number of log events applied.
pub async fn catch_up(store: &Store, settings: &SagaSettings) -> Result<u64, ViewsError> {
    Projector::new(store, settings.clone(), ProjectorOptions::default())
        .catch_up()
        .await
}

/// Keeps the live read models following the log until `shutdown` completes: catches up, then
/// polls every `options.poll_interval`. Errors are logged and retried after a back-off (the
/// database may come back); the loop only ends on shutdown.
pub async fn run_projector(
    store: Store,
    settings: SagaSettings,
    options: ProjectorOptions,
    shutdown: impl Future<Output = ()>,
) {
    let poll = options.poll_interval;
    let mut projector = Projector::new(&store, settings, options);
    let mut backoff = poll;
    tokio::pin!(shutdown);
    loop {
        let wait = match projector.catch_up().await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(events = n, "views caught up");
                }
                backoff = poll;
                poll
            }
            Err(e) => {
                tracing::warn!(error = %e, transient = e.is_transient(), "views projector failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
