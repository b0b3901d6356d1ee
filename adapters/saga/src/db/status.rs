//! The work rows as status, metrics and callers of `process_event` see them.

use store::{with_pool, Store};

use super::now_ms;
use crate::SagaError;

/// Counts for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Counts {
    /// Rows not yet done and not parked.
    pub pending: i64,
    /// Of those, claimed under a live lease.
    pub in_flight: i64,
    /// Rows waiting for a person (parked saga, or a parked participant).
    pub failed: i64,
    /// The earliest `next_attempt_at` of a pending row not claimed (0 when none).
    pub next_attempt_at: Option<i64>,
}

/// The counts, with leases judged by the wall clock (an operator's view).
pub async fn counts(store: &Store) -> Result<Counts, SagaError> {
    let now = now_ms();
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT \
               COALESCE(SUM(CASE WHEN done_position < wanted_position AND parked = FALSE THEN 1 ELSE 0 END), 0) AS pending, \
               COALESCE(SUM(CASE WHEN done_position < wanted_position AND parked = FALSE \
                   AND claimed_by IS NOT NULL AND lease_until >= $1 THEN 1 ELSE 0 END), 0) AS in_flight, \
               COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
               MIN(CASE WHEN done_position < wanted_position AND parked = FALSE \
                   AND (claimed_by IS NULL OR lease_until < $1) THEN next_attempt_at ELSE NULL END) \
                   AS next_attempt_at \
             FROM saga_work",
        )
        .bind(now)
        .fetch_one(p)
        .await?
    }))
}

/// One row as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkRow {
    pub event_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub parked: bool,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub updated_at_ms: i64,
}

const WORK_ROW: &str =
    "SELECT event_id, state, reason, parked, attempts, next_attempt_at, updated_at_ms \
     FROM saga_work";

/// Rows that failed (parked or with a parked participant), and the most recent row with an
/// error (for `last_error`).
pub async fn failed_rows(
    store: &Store,
    limit: i64,
) -> Result<(Vec<WorkRow>, Option<WorkRow>), SagaError> {
    Ok(with_pool!(store.pool(), |p| {
        let failed = sqlx::query_as(&format!(
            "{WORK_ROW} WHERE state = 'failed' ORDER BY updated_at_ms DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(p)
        .await?;
        let last = sqlx::query_as(&format!(
            "{WORK_ROW} WHERE reason IS NOT NULL ORDER BY updated_at_ms DESC LIMIT 1"
        ))
        .fetch_optional(p)
        .await?;
        (failed, last)
    }))
}

/// The state of one OpenVLE event's work row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct WorkState {
    /// `pending`, `retrying`, `in_sync`, `failed`, …
    pub state: String,
    pub reason: Option<String>,
    pub parked: bool,
    /// Processed up to the last position it was queued for.
    pub done: bool,
}

pub async fn work_state(store: &Store, event_id: &str) -> Result<Option<WorkState>, SagaError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT state, reason, parked, done_position >= wanted_position AS done \
             FROM saga_work WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(p)
        .await?
    }))
}
