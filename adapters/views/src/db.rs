//! The read models' tables: names, shadow copies, checkpoint, replay lock, swap, and reading
//! event rows the store does not offer a reader for (history before a position, audit join).
//!
//! Statements are written once with `$n` placeholders (sqlx's SQLite driver accepts them too)
//! and run on whichever pool the store holds; dialect differences are spelled out where they
//! occur.

use chrono::Utc;
use projections::saga::{SagaSettings, ViewFingerprint};
use store::{DbPool, Store, StoredEvent};

use crate::error::ViewsError;

/// Runs `$body` with `$p` bound to the SQLite or the PostgreSQL pool.
macro_rules! with_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            DbPool::Sqlite($p) => $body,
            DbPool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The checkpoint row of the live views.
pub const CHECKPOINT: &str = "views";
/// The row of `views_checkpoint` that locks a running replay.
pub(crate) const REPLAY_LOCK: &str = "replay";
/// A replay whose heartbeat is older than this is considered dead and its lock is taken over.
pub(crate) const REPLAY_TAKEOVER_MS: i64 = 120_000;

pub(crate) const SQLITE_MODELS: &str = include_str!("../sql/sqlite_models.sql");
pub(crate) const POSTGRES_MODELS: &str = include_str!("../sql/postgres_models.sql");

/// The names of one set of read-model tables (the live ones or a replay's shadow copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tables {
    pub event_views: &'static str,
    pub moodle_courses: &'static str,
    pub audit_index: &'static str,
}

pub(crate) const LIVE: Tables = Tables {
    event_views: "event_views",
    moodle_courses: "moodle_courses",
    audit_index: "audit_index",
};

pub(crate) const SHADOW: Tables = Tables {
    event_views: "event_views_rebuild",
    moodle_courses: "moodle_courses_rebuild",
    audit_index: "audit_index_rebuild",
};

impl Tables {
    pub(crate) fn pairs(self) -> [&'static str; 3] {
        [self.event_views, self.moodle_courses, self.audit_index]
    }
}

/// The models' DDL with the live table names replaced by `tables`.
pub(crate) fn models_ddl(models: &str, tables: Tables) -> String {
    let mut ddl = models.to_string();
    for (live, other) in LIVE.pairs().iter().zip(tables.pairs()) {
        ddl = ddl.replace(
            &format!("CREATE TABLE IF NOT EXISTS {live}\n"),
            &format!("CREATE TABLE IF NOT EXISTS {other}\n"),
        );
    }
    ddl
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

const EVENT_COLUMNS: &str = "e.position, e.aggregate_type, e.aggregate_id, e.sequence, \
     e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at";

/// One `events` row (selected with [`EVENT_COLUMNS`]) decoded by the store's own decoder, so a
/// story or a fold sees exactly what the store's readers return.
trait EventRow {
    fn stored_event(&self) -> Result<StoredEvent, store::StoreError>;
}

impl EventRow for sqlx::sqlite::SqliteRow {
    fn stored_event(&self) -> Result<StoredEvent, store::StoreError> {
        store::event_from_sqlite(self)
    }
}

impl EventRow for sqlx::postgres::PgRow {
    fn stored_event(&self) -> Result<StoredEvent, store::StoreError> {
        store::event_from_pg(self)
    }
}

/// Both streams of one OpenVLE event strictly before `before`, in position order (how a fold
/// evicted from the cache, or never cached, is rebuilt up to the event being applied).
pub(crate) async fn history_before(
    store: &Store,
    event_id: &str,
    before: i64,
) -> Result<Vec<StoredEvent>, ViewsError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.aggregate_id = $1 \
         AND e.aggregate_type IN ('event', 'moodle_sync') AND e.position < $2 \
         ORDER BY e.position"
    );
    with_pool!(store.pool(), |p| {
        let rows = sqlx::query(&sql)
            .bind(event_id)
            .bind(before)
            .fetch_all(p)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(row.stored_event()?);
        }
        Ok(out)
    })
}

/// A page of one OpenVLE event's indexed history: rows of `audit_index` joined to `events`,
/// positions in `(after, upto]`, at most `limit`.
pub(crate) async fn indexed_history_page(
    store: &Store,
    event_id: &str,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, ViewsError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_index a JOIN events e ON e.position = a.position \
         WHERE a.event_id = $1 AND a.position > $2 AND a.position <= $3 \
         ORDER BY a.position LIMIT $4"
    );
    with_pool!(store.pool(), |p| {
        let rows = sqlx::query(&sql)
            .bind(event_id)
            .bind(after)
            .bind(upto)
            .bind(limit)
            .fetch_all(p)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(row.stored_event()?);
        }
        Ok(out)
    })
}

/// The live views' checkpoint and the settings they were computed with (position 0 and None
/// when the row is missing).
pub(crate) async fn read_checkpoint(
    store: &Store,
) -> Result<(i64, Option<ViewFingerprint>), ViewsError> {
    let row: Option<(i64, Option<String>)> = with_pool!(store.pool(), |p| {
        sqlx::query_as("SELECT position, settings FROM views_checkpoint WHERE name = $1")
            .bind(CHECKPOINT)
            .fetch_optional(p)
            .await?
    });
    match row {
        None => Ok((0, None)),
        Some((position, None)) => Ok((position, None)),
        Some((position, Some(json))) => Ok((position, Some(serde_json::from_str(&json)?))),
    }
}

/// The statements of a DDL script without comments (split on `;`), for running them one by one
/// inside a transaction.
pub(crate) fn statements(script: &str) -> impl Iterator<Item = &str> {
    script.split(';').map(str::trim).filter(|s| !s.is_empty())
}

/// Creates the read-model tables and the checkpoint when the migrations did not (idempotent).
pub async fn ensure_schema(store: &Store) -> Result<(), ViewsError> {
    const SQLITE_CHECKPOINT: &str =
        "CREATE TABLE IF NOT EXISTS views_checkpoint (name text PRIMARY KEY, \
        position integer NOT NULL, settings text, updated_at_ms integer NOT NULL) STRICT";
    const PG_CHECKPOINT: &str =
        "CREATE TABLE IF NOT EXISTS views_checkpoint (name text PRIMARY KEY, \
        position bigint NOT NULL, settings text, updated_at_ms bigint NOT NULL)";
    match store.pool() {
        DbPool::Sqlite(p) => {
            sqlx::raw_sql(SQLITE_MODELS).execute(p).await?;
            sqlx::query(SQLITE_CHECKPOINT).execute(p).await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            // Concurrent CREATE ... IF NOT EXISTS can clash on PostgreSQL's catalogs.
            sqlx::query("SELECT pg_advisory_xact_lock(8675309200)")
                .execute(&mut *tx)
                .await?;
            for stmt in statements(POSTGRES_MODELS) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query(PG_CHECKPOINT).execute(&mut *tx).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Drops and creates the shadow tables a replay builds into.
pub(crate) async fn recreate_shadow(store: &Store) -> Result<(), ViewsError> {
    drop_shadow(store).await?;
    match store.pool() {
        DbPool::Sqlite(p) => {
            sqlx::raw_sql(&models_ddl(SQLITE_MODELS, SHADOW))
                .execute(p)
                .await?;
        }
        DbPool::Postgres(p) => {
            sqlx::raw_sql(&models_ddl(POSTGRES_MODELS, SHADOW))
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Drops the shadow tables (after a failed replay, or before a new one).
pub(crate) async fn drop_shadow(store: &Store) -> Result<(), ViewsError> {
    let sql: String = SHADOW
        .pairs()
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {t};"))
        .collect();
    with_pool!(store.pool(), |p| {
        sqlx::raw_sql(&sql).execute(p).await?;
    });
    Ok(())
}

/// Takes the replay lock (a row of `views_checkpoint`), refusing while another replay's
/// heartbeat is fresh.
pub(crate) async fn take_replay_lock(store: &Store, holder: &str) -> Result<(), ViewsError> {
    let now = now_ms();
    let current: Option<(Option<String>, i64)> = with_pool!(store.pool(), |p| {
        sqlx::query_as("SELECT settings, updated_at_ms FROM views_checkpoint WHERE name = $1")
            .bind(REPLAY_LOCK)
            .fetch_optional(p)
            .await?
    });
    if let Some((other, beat)) = current {
        if now - beat < REPLAY_TAKEOVER_MS {
            return Err(ViewsError::ReplayRunning {
                holder: other.unwrap_or_else(|| "unknown".into()),
                age_secs: (now - beat) / 1000,
            });
        }
    }
    // Insert, or take over a stale lock; a concurrent taker loses on the heartbeat condition.
    let taken = with_pool!(store.pool(), |p| {
        sqlx::query(
            "INSERT INTO views_checkpoint (name, position, settings, updated_at_ms) \
             VALUES ($1, 0, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET settings = excluded.settings, updated_at_ms = excluded.updated_at_ms \
             WHERE views_checkpoint.updated_at_ms < $4",
        )
        .bind(REPLAY_LOCK)
        .bind(holder)
        .bind(now)
        .bind(now - REPLAY_TAKEOVER_MS)
        .execute(p)
        .await?
        .rows_affected()
    });
    if taken == 0 {
        return Err(ViewsError::ReplayRunning {
            holder: "another process".into(),
            age_secs: 0,
        });
    }
    Ok(())
}

/// Refreshes the replay lock's heartbeat.
pub(crate) async fn heartbeat(store: &Store, holder: &str) -> Result<(), ViewsError> {
    with_pool!(store.pool(), |p| {
        sqlx::query(
            "UPDATE views_checkpoint SET updated_at_ms = $1 WHERE name = $2 AND settings = $3",
        )
        .bind(now_ms())
        .bind(REPLAY_LOCK)
        .bind(holder)
        .execute(p)
        .await?;
    });
    Ok(())
}

/// Releases the replay lock (best effort: a stale lock is taken over after the delay anyway).
pub(crate) async fn release_replay_lock(store: &Store, holder: &str) {
    let result = with_pool!(store.pool(), |p| {
        sqlx::query("DELETE FROM views_checkpoint WHERE name = $1 AND settings = $2")
            .bind(REPLAY_LOCK)
            .bind(holder)
            .execute(p)
            .await
            .map(|_| ())
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not release the replay lock; it expires by itself");
    }
}

/// Swaps the shadow tables in, in one transaction: drop the live tables, rename the shadows,
/// and set the checkpoint to where the shadow build ended, with the settings it used. A reader
/// sees the old views or the new ones, never a half-built one.
pub(crate) async fn swap_in_shadow(
    store: &Store,
    end: i64,
    settings: &SagaSettings,
) -> Result<(), ViewsError> {
    let settings = serde_json::to_string(&settings.view_fingerprint())?;
    let upsert = "INSERT INTO views_checkpoint (name, position, settings, updated_at_ms) \
                  VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
                  SET position = excluded.position, settings = excluded.settings, \
                  updated_at_ms = excluded.updated_at_ms";
    match store.pool() {
        DbPool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            for (live, shadow) in LIVE.pairs().iter().zip(SHADOW.pairs()) {
                sqlx::query(&format!("DROP TABLE IF EXISTS {live}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {live}"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(upsert)
                .bind(CHECKPOINT)
                .bind(end)
                .bind(&settings)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            // Do not queue behind a long reader for ever: fail and let the operator retry.
            sqlx::query("SET LOCAL lock_timeout = '30s'")
                .execute(&mut *tx)
                .await?;
            // Serialise with the live projector before touching its tables.
            sqlx::query("SELECT position FROM views_checkpoint WHERE name = $1 FOR UPDATE")
                .bind(CHECKPOINT)
                .fetch_optional(&mut *tx)
                .await?;
            for (live, shadow) in LIVE.pairs().iter().zip(SHADOW.pairs()) {
                sqlx::query(&format!("DROP TABLE IF EXISTS {live}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {live}"))
                    .execute(&mut *tx)
                    .await?;
                // Keep the primary key's conventional name so the next replay's shadow gets
                // its own without a numeric suffix.
                let pkey: Option<String> = sqlx::query_scalar(
                    "SELECT conname::text FROM pg_constraint \
                     WHERE conrelid = to_regclass($1) AND contype = 'p'",
                )
                .bind(*live)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(pkey) = pkey {
                    let wanted = format!("{live}_pkey");
                    if pkey != wanted {
                        sqlx::query(&format!(
                            "ALTER TABLE {live} RENAME CONSTRAINT \"{pkey}\" TO {wanted}"
                        ))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            sqlx::query(upsert)
                .bind(CHECKPOINT)
                .bind(end)
                .bind(&settings)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_hold_the_same_models() {
        let sqlite = include_str!("../../store/migrations/sqlite/0200_views.sql");
        let pg = include_str!("../../store/migrations/postgres/0200_views.sql");
        assert!(
            sqlite.contains(SQLITE_MODELS),
            "sqlite 0200 drifted from sql/sqlite_models.sql"
        );
        assert!(
            pg.contains(POSTGRES_MODELS),
            "postgres 0200 drifted from sql/postgres_models.sql"
        );
    }

    #[test]
    fn shadow_ddl_renames_every_table() {
        for models in [SQLITE_MODELS, POSTGRES_MODELS] {
            let ddl = models_ddl(models, SHADOW);
            for t in SHADOW.pairs() {
                assert!(ddl.contains(&format!("EXISTS {t}\n")), "{t}");
            }
            for t in LIVE.pairs() {
                assert!(!ddl.contains(&format!("EXISTS {t}\n")), "{t}");
            }
        }
    }
}
