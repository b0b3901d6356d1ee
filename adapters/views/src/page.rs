//! Writing a page's rows, shared by the live projector (rows and checkpoint in one
//! transaction) and a replay's shadow build (rows only).
//!
//! Exactly-once for the views: the commit of a live page compares the checkpoint it started
//! from with the stored one (row-locked on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and writes
//! nothing when another writer (a second projector, or a replay's swap) moved it. Rows also
//! carry the last position folded into them and never go backwards.

use sqlx::types::Json;
use sqlx::QueryBuilder;
use store::{with_pool, Store};

use crate::db::{self, CHECKPOINT, LIVE};
use crate::error::ViewsError;
use crate::fold::PageOutput;

/// Rows per multi-row INSERT (well under SQLite's and PostgreSQL's bound-parameter limits).
const CHUNK: usize = 500;

/// Writes a page's rows into `table` on an open transaction or connection.
macro_rules! write_rows {
    ($conn:expr, $table:expr, $out:expr) => {{
        let table: &str = $table;
        let out: &PageOutput = $out;
        for chunk in out.views.chunks(CHUNK) {
            let mut qb = QueryBuilder::new(format!(
                "INSERT INTO {table} (event_id, view, fold, last_position) "
            ));
            let mut json = Vec::with_capacity(chunk.len());
            for r in chunk {
                json.push(serde_json::to_value(&r.view)?);
            }
            qb.push_values(chunk.iter().zip(json), |mut b, (r, v)| {
                b.push_bind(r.event_id.as_str())
                    .push_bind(Json(v))
                    .push_bind(r.fold.as_str())
                    .push_bind(r.last_position);
            });
            qb.push(format!(
                " ON CONFLICT (event_id) DO UPDATE SET view = excluded.view, \
                 fold = excluded.fold, last_position = excluded.last_position \
                 WHERE excluded.last_position >= {table}.last_position"
            ));
            qb.build().execute(&mut *$conn).await?;
        }
    }};
}

/// Writes rows into `table` in one transaction, without a checkpoint (a replay's shadow build).
pub(crate) async fn write_page(
    store: &Store,
    table: &str,
    out: &PageOutput,
) -> Result<(), ViewsError> {
    if out.views.is_empty() {
        return Ok(());
    }
    let begin = store.backend().begin_serialised();
    with_pool!(store.pool(), |p| {
        let mut tx = p.begin_with(begin).await?;
        write_rows!(tx, table, out);
        tx.commit().await?;
    });
    Ok(())
}

/// Writes a page's rows into the live table and moves the checkpoint from `from` to `to`, in
/// one transaction. `Ok(false)`: the checkpoint was no longer `from`; nothing was written.
pub(crate) async fn commit_page(
    store: &Store,
    from: i64,
    to: i64,
    settings: &str,
    out: &PageOutput,
) -> Result<bool, ViewsError> {
    let backend = store.backend();
    let select = format!(
        "SELECT position FROM views_checkpoint WHERE name = $1{}",
        backend.for_update()
    );
    with_pool!(store.pool(), |p| {
        let mut tx = p.begin_with(backend.begin_serialised()).await?;
        let current: Option<i64> = sqlx::query_scalar(&select)
            .bind(CHECKPOINT)
            .fetch_optional(&mut *tx)
            .await?;
        if current.unwrap_or(0) != from {
            tx.rollback().await?;
            return Ok(false);
        }
        write_rows!(tx, LIVE, out);
        sqlx::query(db::UPSERT_CHECKPOINT)
            .bind(CHECKPOINT)
            .bind(to)
            .bind(settings)
            .bind(db::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(true)
}
