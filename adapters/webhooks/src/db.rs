//! The webhooks' own tables (migration `0300_webhooks`): the reader's checkpoint, the last state
//! enqueued per event, and the outbox. Statements are written once with `$n` placeholders and run
//! on either pool ([`store::with_pool!`]); times are bound by the caller, never read in SQL.

use std::collections::HashMap;

use store::{with_pool, Store};

use crate::error::WebhookError;
use crate::message::Message;

/// The outbox reader's checkpoint row.
pub const CHECKPOINT: &str = "webhooks";

/// Every column read or written, per table: selecting them (no row) fails when one is missing.
const EXPECTED: [(&str, &str); 3] = [
    ("webhook_checkpoint", "name, position, updated_at_ms"),
    ("webhook_event_state", "event_id, state, position"),
    (
        "webhook_outbox",
        "id, event_id, position, ord, kind, body, created_at_ms, status, attempts, \
         next_attempt_at, claimed_by, claimed_until, last_error, delivered_at_ms, updated_at_ms",
    ),
];

/// Checks that the migrations made the tables (creates nothing: the migrations are the only path
/// to the schema).
pub async fn ensure_schema(store: &Store) -> Result<(), WebhookError> {
    for (table, columns) in EXPECTED {
        if let Some(e) = store.table_problem(table, columns).await? {
            return Err(WebhookError::Schema(format!(
                "table {table} is missing or lacks a column ({e}); apply the migrations \
                 (`openvle-moodle migrate`)"
            )));
        }
    }
    Ok(())
}

/// The reader's checkpoint (0 when it never ran).
pub async fn checkpoint(store: &Store) -> Result<i64, WebhookError> {
    let row: Option<i64> = with_pool!(store.pool(), |p| {
        sqlx::query_scalar("SELECT position FROM webhook_checkpoint WHERE name = $1")
            .bind(CHECKPOINT)
            .fetch_optional(p)
            .await?
    });
    Ok(row.unwrap_or(0))
}

/// The last state enqueued for each of `event_ids` (absent: none yet).
pub async fn last_states(
    store: &Store,
    event_ids: &[String],
) -> Result<HashMap<String, String>, WebhookError> {
    let mut out = HashMap::with_capacity(event_ids.len());
    // One look-up per event keeps the statement the same on both backends; pages are small.
    for id in event_ids {
        let row: Option<String> = with_pool!(store.pool(), |p| {
            sqlx::query_scalar("SELECT state FROM webhook_event_state WHERE event_id = $1")
                .bind(id.as_str())
                .fetch_optional(p)
                .await?
        });
        if let Some(state) = row {
            out.insert(id.clone(), state);
        }
    }
    Ok(out)
}

const INIT_CHECKPOINT: &str = "INSERT INTO webhook_checkpoint (name, position, updated_at_ms) \
     VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING";
const MOVE_CHECKPOINT: &str = "UPDATE webhook_checkpoint SET position = $1, updated_at_ms = $2 \
     WHERE name = $3 AND position = $4";
const INSERT_MESSAGE: &str =
    "INSERT INTO webhook_outbox (id, event_id, position, ord, kind, body, \
     created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
     ON CONFLICT (id) DO NOTHING";
const UPSERT_STATE: &str = "INSERT INTO webhook_event_state (event_id, state, position) \
     VALUES ($1, $2, $3) ON CONFLICT (event_id) DO UPDATE SET state = excluded.state, \
     position = excluded.position";

/// Enqueues `messages`, records the `states` they report, and moves the checkpoint from `from`
/// to `to`, in one transaction. False when another reader moved the checkpoint first (nothing
/// was written).
pub async fn advance(
    store: &Store,
    from: i64,
    to: i64,
    messages: &[Message],
    states: &[(String, String, i64)],
    now: i64,
) -> Result<bool, WebhookError> {
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
        for m in messages {
            sqlx::query(INSERT_MESSAGE)
                .bind(m.id.as_str())
                .bind(m.event_id.as_str())
                .bind(m.position)
                .bind(i64::from(m.ord))
                .bind(m.kind.as_str())
                .bind(m.body.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for (event_id, state, position) in states {
            sqlx::query(UPSERT_STATE)
                .bind(event_id.as_str())
                .bind(state.as_str())
                .bind(*position)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(true)
}

/// A message taken for sending.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    pub attempts: i64,
    pub created_at_ms: i64,
}

/// The earliest pending message of each event whose turn it is (no earlier pending message of
/// its event), due at `now` and not held by another sender, oldest first.
const HEADS: &str = "SELECT o.id, o.event_id, o.kind, o.body, o.attempts, o.created_at_ms \
     FROM webhook_outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
     AND o.claimed_until <= $1 AND NOT EXISTS (SELECT 1 FROM webhook_outbox e \
       WHERE e.event_id = o.event_id AND e.status = 'pending' \
       AND (e.position < o.position OR (e.position = o.position AND e.ord < o.ord))) \
     ORDER BY o.position, o.ord LIMIT $2";
const CLAIM: &str = "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 \
     WHERE id = $3 AND status = 'pending' AND claimed_until <= $4";

/// Takes up to `limit` messages, each the head of its event, with a lease until `lease_until`.
pub async fn claim_due(
    store: &Store,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<Due>, WebhookError> {
    type Row = (String, String, String, String, i64, i64);
    let rows: Vec<Row> = with_pool!(store.pool(), |p| {
        sqlx::query_as(HEADS)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(p)
            .await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for (id, event_id, kind, body, attempts, created_at_ms) in rows {
        let taken = with_pool!(store.pool(), |p| {
            sqlx::query(CLAIM)
                .bind(worker)
                .bind(lease_until)
                .bind(id.as_str())
                .bind(now)
                .execute(p)
                .await?
                .rows_affected()
        });
        if taken == 1 {
            out.push(Due {
                id,
                event_id,
                kind,
                body,
                attempts,
                created_at_ms,
            });
        }
    }
    Ok(out)
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// Given up: kept, visible, redeliverable.
    Dead {
        error: String,
    },
}

/// Records the end of an attempt and hands the lease back.
pub async fn record(
    store: &Store,
    id: &str,
    outcome: &Outcome,
    now: i64,
) -> Result<(), WebhookError> {
    let (status, next, error, delivered) = match outcome {
        Outcome::Delivered => ("delivered", 0, None, Some(now)),
        Outcome::Retry {
            next_attempt_at,
            error,
        } => ("pending", *next_attempt_at, Some(error.as_str()), None),
        Outcome::Dead { error } => ("dead", 0, Some(error.as_str()), None),
    };
    with_pool!(store.pool(), |p| {
        sqlx::query(
            "UPDATE webhook_outbox SET status = $1, next_attempt_at = $2, last_error = $3, \
             delivered_at_ms = $4, attempts = attempts + 1, claimed_by = NULL, \
             claimed_until = 0, updated_at_ms = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(delivered)
        .bind(now)
        .bind(id)
        .execute(p)
        .await?;
    });
    Ok(())
}

/// Hands back every lease `worker` holds (a restart under the same name need not wait them out;
/// a message it was sending is sent again, with the same id).
pub async fn release_claims(store: &Store, worker: &str) -> Result<u64, WebhookError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query(
            "UPDATE webhook_outbox SET claimed_by = NULL, claimed_until = 0 \
             WHERE claimed_by = $1 AND status = 'pending'",
        )
        .bind(worker)
        .execute(p)
        .await?
        .rows_affected()
    }))
}

/// Makes dead messages pending again, from their first attempt (all of them, or those of one
/// event, or one message). Returns how many.
pub async fn redeliver(
    store: &Store,
    event_id: Option<&str>,
    message_id: Option<&str>,
    now: i64,
) -> Result<u64, WebhookError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query(
            "UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = 0, \
             created_at_ms = $1, updated_at_ms = $1 WHERE status = 'dead' \
             AND ($2 IS NULL OR event_id = $2) AND ($3 IS NULL OR id = $3)",
        )
        .bind(now)
        .bind(event_id)
        .bind(message_id)
        .execute(p)
        .await?
        .rows_affected()
    }))
}

/// Deletes delivered messages delivered before `before` (what was delivered is not needed
/// again; the log keeps every change). Returns how many.
pub async fn prune_delivered(store: &Store, before: i64) -> Result<u64, WebhookError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query(
            "DELETE FROM webhook_outbox WHERE status = 'delivered' AND delivered_at_ms < $1",
        )
        .bind(before)
        .execute(p)
        .await?
        .rows_affected()
    }))
}

/// Counts by status, and the oldest pending message's creation time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    pub dead: i64,
    pub delivered: i64,
    pub oldest_pending_ms: Option<i64>,
}

pub async fn counts(store: &Store) -> Result<Counts, WebhookError> {
    let rows: Vec<(String, i64, Option<i64>)> = with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT status, COUNT(*), MIN(created_at_ms) FROM webhook_outbox GROUP BY status",
        )
        .fetch_all(p)
        .await?
    });
    let mut c = Counts::default();
    for (status, n, oldest) in rows {
        match status.as_str() {
            "pending" => {
                c.pending = n;
                c.oldest_pending_ms = oldest;
            }
            "dead" => c.dead = n,
            "delivered" => c.delivered = n,
            _ => {}
        }
    }
    Ok(c)
}

/// The most recent failed attempt: (message id, event id, type, status, error, attempts, when).
pub type LastFailure = (String, String, String, String, String, i64, i64);

pub async fn last_failure(store: &Store) -> Result<Option<LastFailure>, WebhookError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT id, event_id, kind, status, last_error, attempts, updated_at_ms \
             FROM webhook_outbox WHERE last_error IS NOT NULL \
             ORDER BY updated_at_ms DESC, id LIMIT 1",
        )
        .fetch_optional(p)
        .await?
    }))
}

/// Dead messages, newest first: (message id, event id, type, error, attempts, when).
pub type DeadRow = (String, String, String, Option<String>, i64, i64);

pub async fn dead(store: &Store, limit: i64) -> Result<Vec<DeadRow>, WebhookError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT id, event_id, kind, last_error, attempts, updated_at_ms \
             FROM webhook_outbox WHERE status = 'dead' ORDER BY updated_at_ms DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(p)
        .await?
    }))
}
