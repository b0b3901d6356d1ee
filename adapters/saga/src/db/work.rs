//! Claims and leases on work rows: one active processor per OpenVLE event across workers and
//! processes. A claim holds a row until `lease_until`; a lease that runs out lets another worker
//! take the row over. Every function that compares a lease with the time takes `now` (the
//! worker's [`Clock`](crate::Clock)), so expiry is tested by moving a clock.

use store::{with_pool, Store};

use super::now_ms;
use crate::SagaError;

/// A claimed work row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Claim {
    pub event_id: String,
    /// The position to record as done when the plan is empty.
    pub wanted_position: i64,
    pub attempts: i64,
}

/// The set-up of a claim: `$1` the worker, `$2` its lease, `$3` now.
const CLAIM_SET: &str =
    "UPDATE saga_work SET claimed_by = $1, lease_until = $2, updated_at_ms = $3";
const CLAIMED: &str = "RETURNING event_id, wanted_position, attempts";

/// Claims up to `limit` ready rows (due at `now`, unclaimed or with a lease run out) for
/// `worker` until `lease_until`.
pub async fn claim(
    store: &Store,
    worker: &str,
    limit: usize,
    now: i64,
    lease_until: i64,
) -> Result<Vec<Claim>, SagaError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // PostgreSQL: concurrent claimers skip each other's rows. SQLite: one writer at a time, the
    // UPDATE is the claim.
    let sql = format!(
        "{CLAIM_SET} WHERE event_id IN (SELECT event_id FROM saga_work \
         WHERE done_position < wanted_position AND parked = FALSE AND next_attempt_at <= $3 \
         AND (claimed_by IS NULL OR lease_until < $3) \
         ORDER BY wanted_position LIMIT $4{}) {CLAIMED}",
        store.backend().for_update_skip_locked()
    );
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(&sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(p)
            .await?
    }))
}

/// Claims one event's row (ready or waiting out a retry delay) unless another worker holds it
/// under a lease still running at `now`, or it is parked.
pub async fn claim_event(
    store: &Store,
    worker: &str,
    event_id: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claim>, SagaError> {
    let sql = format!(
        "{CLAIM_SET} WHERE event_id = $4 AND done_position < wanted_position AND parked = FALSE \
         AND (claimed_by IS NULL OR lease_until < $3 OR claimed_by = $1) {CLAIMED}"
    );
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as(&sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(event_id)
            .fetch_optional(p)
            .await?
    }))
}

/// Extends the lease of every row `worker` holds.
pub async fn renew_all(store: &Store, worker: &str, lease_until: i64) -> Result<u64, SagaError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query("UPDATE saga_work SET lease_until = $1 WHERE claimed_by = $2")
            .bind(lease_until)
            .bind(worker)
            .execute(p)
            .await?
            .rows_affected()
    }))
}

/// Extends one lease; false when the row is no longer ours (another worker took it over).
pub async fn renew(
    store: &Store,
    worker: &str,
    event_id: &str,
    lease_until: i64,
) -> Result<bool, SagaError> {
    let n = with_pool!(store.pool(), |p| {
        sqlx::query("UPDATE saga_work SET lease_until = $1 WHERE event_id = $2 AND claimed_by = $3")
            .bind(lease_until)
            .bind(event_id)
            .bind(worker)
            .execute(p)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Gives back every row `worker` holds without finishing it (start-up after a crash with the same
/// worker id, or a graceful stop).
pub async fn release_all(store: &Store, worker: &str) -> Result<u64, SagaError> {
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query("UPDATE saga_work SET claimed_by = NULL, lease_until = 0 WHERE claimed_by = $1")
            .bind(worker)
            .execute(p)
            .await?
            .rows_affected()
    }))
}

/// How a claim ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// The plan is empty: done up to the claimed position. `state` is the plan's state
    /// (`in_sync`, `failed` when a participant is parked, …) and `reason` why it failed.
    Done {
        state: &'static str,
        reason: Option<String>,
    },
    /// Try again at `at` (a transient failure: `attempts` so far, the error as `reason`).
    RetryAt {
        at: i64,
        attempts: i64,
        reason: String,
    },
    /// Parked: nothing more until an operator resumes.
    Parked { reason: String },
    /// Done with what the log holds, but due again at `at` (ms) when nothing happens before:
    /// the start of an `at_start` event. A new event of its stream makes it due at once.
    WakeAt { at: i64, reason: String },
    /// Stopped before the plan was empty (shutdown, lease lost, store trouble): ready again now.
    Abandon,
}

/// Every release gives the claim back: `$1` now, `$2` the event, `$3` the worker; the SET of
/// each kind of release adds its own from `$4`.
const RELEASE: &str = "UPDATE saga_work SET claimed_by = NULL, lease_until = 0, updated_at_ms = $1";
const OURS: &str = "WHERE event_id = $2 AND claimed_by = $3";

/// Ends `worker`'s claim on `claim`'s row.
pub async fn release(
    store: &Store,
    worker: &str,
    claim: &Claim,
    how: &Release,
) -> Result<(), SagaError> {
    let now = now_ms();
    let sql = match how {
        Release::Done { .. } => format!(
            "{RELEASE}, done_position = CASE WHEN $4 > done_position THEN $4 \
             ELSE done_position END, attempts = 0, next_attempt_at = 0, state = $5, \
             reason = $6 {OURS}"
        ),
        Release::RetryAt { .. } => format!(
            "{RELEASE}, attempts = $4, next_attempt_at = $5, state = 'retrying', reason = $6 \
             {OURS}"
        ),
        Release::Parked { .. } => {
            format!("{RELEASE}, parked = TRUE, state = 'failed', reason = $4 {OURS}")
        }
        Release::WakeAt { .. } => format!(
            "{RELEASE}, attempts = 0, next_attempt_at = $4, state = 'waiting', reason = $5 {OURS}"
        ),
        Release::Abandon => format!("{RELEASE} {OURS}"),
    };
    with_pool!(store.pool(), |p| {
        let q = sqlx::query(&sql)
            .bind(now)
            .bind(claim.event_id.as_str())
            .bind(worker);
        let q = match how {
            Release::Done { state, reason } => q
                .bind(claim.wanted_position)
                .bind(*state)
                .bind(reason.as_deref()),
            Release::RetryAt {
                at,
                attempts,
                reason,
            } => q.bind(*attempts).bind(*at).bind(reason.as_str()),
            Release::Parked { reason } => q.bind(reason.as_str()),
            Release::WakeAt { at, reason } => q.bind(*at).bind(reason.as_str()),
            Release::Abandon => q,
        };
        q.execute(p).await?;
    });
    Ok(())
}

/// Raises `wanted_position` of an existing row to the new one, never lowers it.
const RAISE_WANTED: &str = "wanted_position = CASE \
     WHEN excluded.wanted_position > saga_work.wanted_position \
     THEN excluded.wanted_position ELSE saga_work.wanted_position END, \
     updated_at_ms = excluded.updated_at_ms";

/// Lifts a parking and queues the event again (after a `Resume` was recorded).
pub async fn requeue(store: &Store, event_id: &str, wanted_position: i64) -> Result<(), SagaError> {
    upsert(
        store,
        event_id,
        wanted_position,
        "parked = FALSE, done_position = 0, next_attempt_at = 0, attempts = 0, \
         state = 'pending', reason = NULL",
    )
    .await
}

/// Queues an event for processing now, up to `position` at least, without lifting a parking
/// (reconcile recorded corrections, or a backfill).
pub async fn touch(store: &Store, event_id: &str, position: i64) -> Result<(), SagaError> {
    upsert(
        store,
        event_id,
        position,
        "next_attempt_at = 0, \
         done_position = CASE WHEN saga_work.done_position >= excluded.wanted_position \
             THEN excluded.wanted_position - 1 ELSE saga_work.done_position END",
    )
    .await
}

/// Inserts a work row wanted up to `position` (at least 1), or updates an existing one with
/// `set` and [`RAISE_WANTED`].
async fn upsert(store: &Store, event_id: &str, position: i64, set: &str) -> Result<(), SagaError> {
    let now = now_ms();
    let sql = format!(
        "INSERT INTO saga_work (event_id, wanted_position, updated_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id) DO UPDATE SET {set}, {RAISE_WANTED}"
    );
    with_pool!(store.pool(), |p| {
        sqlx::query(&sql)
            .bind(event_id)
            .bind(position.max(1))
            .bind(now)
            .execute(p)
            .await?;
    });
    Ok(())
}
