//! The reader's checkpoint and the work rows it derives from the log, moved together in one
//! transaction so a crash never loses a domain event; and the marker a disabled reader leaves.

use store::{with_pool, Store};

use super::now_ms;
use crate::SagaError;

/// The checkpoint name of the Moodle saga's reader.
pub const CHECKPOINT: &str = "moodle_saga";

/// The marker the reader leaves when it moves its checkpoint while the integration is disabled
/// (the position it reached): a worker started later with the integration enabled queues every
/// OpenVLE event of the log up to there, then removes the marker.
pub const DISABLED_MARKER: &str = "moodle_saga_disabled_until";

const POSITION_OF: &str = "SELECT position FROM saga_checkpoints WHERE name = $1";

const INIT_CHECKPOINT: &str = "INSERT INTO saga_checkpoints (name, position, updated_at_ms) \
     VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING";
const MOVE_CHECKPOINT: &str = "UPDATE saga_checkpoints SET position = $1, updated_at_ms = $2 \
     WHERE name = $3 AND position = $4";
const UPSERT_WORK: &str = "INSERT INTO saga_work (event_id, wanted_position, updated_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (event_id) DO UPDATE SET \
     wanted_position = CASE WHEN excluded.wanted_position > saga_work.wanted_position \
         THEN excluded.wanted_position ELSE saga_work.wanted_position END, \
     next_attempt_at = CASE WHEN saga_work.state = 'waiting' \
         AND excluded.wanted_position > saga_work.wanted_position \
         THEN 0 ELSE saga_work.next_attempt_at END, \
     updated_at_ms = excluded.updated_at_ms";
/// (A row `waiting` for a time, the start of an `at_start` event, is due at once when the
/// event changes: the change is not to wait for the start.)
const RESUME_WORK: &str = "UPDATE saga_work SET parked = FALSE, done_position = 0, \
     next_attempt_at = 0, attempts = 0, state = 'pending', reason = NULL, updated_at_ms = $2 \
     WHERE event_id = $1";
/// (Attempts and the done position are kept: nothing was retried by a person.)
const LIFT_PARK: &str = "UPDATE saga_work SET parked = FALSE, next_attempt_at = 0, \
     state = 'pending', updated_at_ms = $2 WHERE event_id = $1 AND parked = TRUE";
const MARK_DISABLED: &str = "INSERT INTO saga_checkpoints (name, position, updated_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
     updated_at_ms = excluded.updated_at_ms";

/// The reader's checkpoint (0 when it never ran).
pub async fn checkpoint(store: &Store) -> Result<i64, SagaError> {
    let row: Option<i64> = with_pool!(store.pool(), |p| {
        sqlx::query_scalar(POSITION_OF)
            .bind(CHECKPOINT)
            .fetch_optional(p)
            .await?
    });
    Ok(row.unwrap_or(0))
}

/// A work row to upsert: the OpenVLE event and the position it must be processed up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub event_id: String,
    pub position: i64,
    /// Also lift a parking and process again (a `Resumed` was read).
    pub resume: bool,
    /// A change that can lift a parked saga was read: queue a parked row again, for the
    /// planner to tell whether the park still holds.
    pub lift: bool,
}

/// Upserts work rows and moves the checkpoint from `from` to `to` in one transaction.
/// Returns false when another reader moved the checkpoint first (nothing was written).
pub async fn advance(
    store: &Store,
    from: i64,
    to: i64,
    wanted: &[Wanted],
) -> Result<bool, SagaError> {
    let now = now_ms();
    with_pool!(store.pool(), |p| {
        let mut tx = p.begin().await?;
        sqlx::query(INIT_CHECKPOINT)
            .bind(CHECKPOINT)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let moved = sqlx::query(MOVE_CHECKPOINT)
            .bind(to)
            .bind(now)
            .bind(CHECKPOINT)
            .bind(from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for w in wanted {
            sqlx::query(UPSERT_WORK)
                .bind(w.event_id.as_str())
                .bind(w.position)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if w.resume {
                sqlx::query(RESUME_WORK)
                    .bind(w.event_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            } else if w.lift {
                sqlx::query(LIFT_PARK)
                    .bind(w.event_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
    });
    Ok(true)
}

/// Records that the reader consumed the log up to `to` with the integration disabled.
pub async fn mark_disabled(store: &Store, to: i64) -> Result<(), SagaError> {
    let now = now_ms();
    with_pool!(store.pool(), |p| {
        sqlx::query(MARK_DISABLED)
            .bind(DISABLED_MARKER)
            .bind(to)
            .bind(now)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// The position the reader reached while disabled, if it ever did (and no backfill ran since).
pub async fn disabled_marker(store: &Store) -> Result<Option<i64>, SagaError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_scalar(POSITION_OF)
            .bind(DISABLED_MARKER)
            .fetch_optional(p)
            .await?
    }))
}

pub async fn clear_disabled_marker(store: &Store) -> Result<(), SagaError> {
    with_pool!(store.pool(), |p| {
        sqlx::query("DELETE FROM saga_checkpoints WHERE name = $1")
            .bind(DISABLED_MARKER)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// Every OpenVLE event of the log (up to `upto` when given) with the position of its last
/// domain event, in id order.
pub async fn vle_events(store: &Store, upto: Option<i64>) -> Result<Vec<(String, i64)>, SagaError> {
    let upto = upto.unwrap_or(i64::MAX);
    let rows: Vec<(String, i64)> = with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT aggregate_id, MAX(position) FROM events WHERE aggregate_type = $1 \
             AND position IS NOT NULL AND position <= $2 GROUP BY aggregate_id ORDER BY aggregate_id",
        )
        .bind("event")
        .bind(upto)
        .fetch_all(p)
        .await?
    });
    Ok(rows)
}
