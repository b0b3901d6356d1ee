//! The read models' tables: names, the shadow copy a replay builds, the checkpoint, the swap,
//! the schema check, and reading event rows the store does not offer a reader for (history
//! before a position).
//!
//! The store's SQL convention (`store::sql`): each statement once with `$n` placeholders, run
//! with `store::with_pool!`, the backend's dialect for what truly differs (`BEGIN IMMEDIATE`,
//! `FOR UPDATE`). The schema comes from the store's migrations only: the shadow table is made from the
//! live table's own definition, so the two cannot drift.

use chrono::Utc;
use projections::saga::{SagaSettings, ViewFingerprint};
use store::{with_pool, Backend, DbPool, Store, StoreError, StoredEvent};

use crate::error::ViewsError;

/// The checkpoint row of the live views.
pub const CHECKPOINT: &str = "views";

/// The live read-model table.
pub(crate) const LIVE: &str = "event_views";
/// The copy a replay builds aside and swaps in.
pub(crate) const SHADOW: &str = "event_views_rebuild";

/// Moves a checkpoint row (inserting it when missing).
pub(crate) const UPSERT_CHECKPOINT: &str =
    "INSERT INTO views_checkpoint (name, position, settings, updated_at_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
     SET position = excluded.position, settings = excluded.settings, \
     updated_at_ms = excluded.updated_at_ms";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Both streams of one OpenVLE event strictly before `before`, in position order (how a fold
/// evicted from the cache, or never cached, is rebuilt up to the event being applied).
pub(crate) async fn history_before(
    store: &Store,
    event_id: &str,
    before: i64,
) -> Result<Vec<StoredEvent>, ViewsError> {
    Ok(store.read_event_history_before(event_id, before).await?)
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

/// Checks that the migrations made the read-model tables this binary writes (the migrations
/// are the only path to the schema; nothing here creates a live table).
pub async fn check_schema(store: &Store) -> Result<(), ViewsError> {
    const PROBES: [(&str, &str); 2] = [
        (
            LIVE,
            "SELECT event_id, view, fold, last_position FROM event_views WHERE 1 = 0",
        ),
        (
            "views_checkpoint",
            "SELECT name, position, settings, updated_at_ms FROM views_checkpoint WHERE 1 = 0",
        ),
    ];
    for (table, probe) in PROBES {
        let result = with_pool!(store.pool(), |p| sqlx::query(probe)
            .fetch_optional(p)
            .await
            .map(|_| ()));
        if let Err(e) = result {
            let e = StoreError::from(e);
            if e.is_unavailable() {
                return Err(e.into());
            }
            return Err(ViewsError::Schema(format!("{table}: {e}")));
        }
    }
    Ok(())
}

/// The shadow table's DDL from the live table's own `CREATE TABLE` text (SQLite keeps it in
/// `sqlite_master`, updated by `ALTER TABLE`; after a swap it names the table quoted): the
/// header is replaced, the column list and table options kept.
fn shadow_ddl(live_sql: &str, shadow: &str) -> Option<String> {
    let open = live_sql.find('(')?;
    Some(format!("CREATE TABLE {shadow} {}", &live_sql[open..]))
}

/// Drops and creates the shadow table a replay builds into, shaped like the live one.
pub(crate) async fn recreate_shadow(store: &Store) -> Result<(), ViewsError> {
    drop_shadow(store).await?;
    match store.pool() {
        DbPool::Sqlite(p) => {
            let live: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(LIVE)
            .fetch_optional(p)
            .await?;
            let ddl = live
                .as_deref()
                .and_then(|sql| shadow_ddl(sql, SHADOW))
                .ok_or_else(|| ViewsError::Schema(format!("no table {LIVE}")))?;
            sqlx::query(&ddl).execute(p).await?;
        }
        DbPool::Postgres(p) => {
            sqlx::query(&format!(
                "CREATE TABLE {SHADOW} (LIKE {LIVE} INCLUDING ALL)"
            ))
            .execute(p)
            .await?;
        }
    }
    Ok(())
}

/// Drops the shadow table (after a failed replay, or before a new one).
pub(crate) async fn drop_shadow(store: &Store) -> Result<(), ViewsError> {
    let sql = format!("DROP TABLE IF EXISTS {SHADOW}");
    with_pool!(store.pool(), |p| {
        sqlx::query(&sql).execute(p).await?;
    });
    Ok(())
}

/// Swaps the shadow table in, in one transaction: drop the live table, rename the shadow, and
/// set the checkpoint to where the shadow build ended, with the settings it used. A reader
/// sees the old views or the new ones, never a half-built one.
pub(crate) async fn swap_in_shadow(
    store: &Store,
    end: i64,
    settings: &SagaSettings,
) -> Result<(), ViewsError> {
    let settings = serde_json::to_string(&settings.view_fingerprint())?;
    let backend = store.backend();
    let lock_checkpoint = format!(
        "SELECT position FROM views_checkpoint WHERE name = $1{}",
        backend.for_update()
    );
    let drop_live = format!("DROP TABLE IF EXISTS {LIVE}");
    let rename = format!("ALTER TABLE {SHADOW} RENAME TO {LIVE}");
    with_pool!(store.pool(), |p| {
        let mut tx = p.begin_with(backend.begin_serialised()).await?;
        if backend == Backend::Postgres {
            // Do not queue behind a long reader for ever: fail and let the operator retry.
            sqlx::query("SET LOCAL lock_timeout = '30s'")
                .execute(&mut *tx)
                .await?;
        }
        // Serialise with the live projector before touching its table.
        sqlx::query(&lock_checkpoint)
            .bind(CHECKPOINT)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(&drop_live).execute(&mut *tx).await?;
        sqlx::query(&rename).execute(&mut *tx).await?;
        if backend == Backend::Postgres {
            // Keep the primary key's conventional name so the next replay's shadow gets its
            // own without a numeric suffix (SQLite names no constraint).
            let pkey: Option<String> = sqlx::query_scalar(
                "SELECT conname::text FROM pg_constraint \
                 WHERE conrelid = to_regclass($1) AND contype = 'p'",
            )
            .bind(LIVE)
            .fetch_optional(&mut *tx)
            .await?;
            let wanted = format!("{LIVE}_pkey");
            if let Some(pkey) = pkey.filter(|k| *k != wanted) {
                sqlx::query(&format!(
                    "ALTER TABLE {LIVE} RENAME CONSTRAINT \"{pkey}\" TO {wanted}"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(UPSERT_CHECKPOINT)
            .bind(CHECKPOINT)
            .bind(end)
            .bind(&settings)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests;
