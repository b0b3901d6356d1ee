//! The saga's own tables: the reader's checkpoint and one work row per OpenVLE event.
//!
//! Every statement is written once with `$n` placeholders (sqlx's SQLite driver accepts them
//! too) and run on whichever pool the store holds; the few dialect differences (row locking)
//! are spelled out where they occur.

use futures::future::BoxFuture;
use sqlx::Row;
use store::{DbPool, Store};

use crate::SagaError;

/// The checkpoint name of the Moodle saga's reader.
pub const CHECKPOINT: &str = "moodle_saga";

const SQLITE_SCHEMA: &str = include_str!("../../store/migrations/sqlite/0100_saga.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../store/migrations/postgres/0100_saga.sql");

/// Runs `$body` with `$p` bound to the SQLite or the PostgreSQL pool.
macro_rules! with_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            DbPool::Sqlite($p) => $body,
            DbPool::Postgres($p) => $body,
        }
    };
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs one statement on a PostgreSQL connection (a transaction). Boxed so that callers' futures
/// stay provably `Send` (rustc cannot see through sqlx's higher-ranked executor bounds here,
/// rust-lang/rust#102211).
fn pg_run<'c, 'q: 'c>(
    conn: &'c mut sqlx::PgConnection,
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
    Box::pin(async move { Ok(q.execute(conn).await?.rows_affected()) })
}

fn pg_raw<'c, 'q: 'c>(
    conn: &'c mut sqlx::PgConnection,
    sql: &'q str,
) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
    Box::pin(async move {
        use sqlx::Executor;
        Ok(conn.execute(sqlx::raw_sql(sql)).await?.rows_affected())
    })
}

/// Creates the saga's tables when the store's migrations did not (idempotent).
pub async fn ensure_schema(store: &Store) -> Result<(), SagaError> {
    match store.pool() {
        DbPool::Sqlite(p) => {
            sqlx::raw_sql(SQLITE_SCHEMA).execute(p).await?;
        }
        DbPool::Postgres(p) => {
            // Concurrent CREATE ... IF NOT EXISTS can still clash on PostgreSQL's catalogs:
            // serialise the saga's schema set-up with an advisory lock of its own.
            let mut tx = p.begin().await?;
            pg_run(
                &mut tx,
                sqlx::query("SELECT pg_advisory_xact_lock(8675309100)"),
            )
            .await?;
            pg_raw(&mut tx, POSTGRES_SCHEMA).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The reader's checkpoint (0 when it never ran).
pub async fn checkpoint(store: &Store) -> Result<i64, SagaError> {
    let row: Option<i64> = with_pool!(store.pool(), |p| {
        sqlx::query_scalar("SELECT position FROM saga_checkpoints WHERE name = $1")
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
}

const INIT_CHECKPOINT: &str = "INSERT INTO saga_checkpoints (name, position, updated_at_ms) \
     VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING";
const MOVE_CHECKPOINT: &str = "UPDATE saga_checkpoints SET position = $1, updated_at_ms = $2 \
     WHERE name = $3 AND position = $4";
const UPSERT_WORK: &str = "INSERT INTO saga_work (event_id, wanted_position, updated_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (event_id) DO UPDATE SET \
     wanted_position = CASE WHEN excluded.wanted_position > saga_work.wanted_position \
         THEN excluded.wanted_position ELSE saga_work.wanted_position END, \
     updated_at_ms = excluded.updated_at_ms";
const RESUME_WORK: &str = "UPDATE saga_work SET parked = FALSE, done_position = 0, \
     next_attempt_at = 0, attempts = 0, state = 'pending', reason = NULL, updated_at_ms = $2 \
     WHERE event_id = $1";

/// Upserts work rows and moves the checkpoint from `from` to `to` in one transaction.
/// Returns false when another reader moved the checkpoint first (nothing was written).
pub async fn advance(
    store: &Store,
    from: i64,
    to: i64,
    wanted: &[Wanted],
) -> Result<bool, SagaError> {
    let now = now_ms();
    match store.pool() {
        DbPool::Sqlite(p) => {
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
                    .bind(&w.event_id)
                    .bind(w.position)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if w.resume {
                    sqlx::query(RESUME_WORK)
                        .bind(&w.event_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            pg_run(
                &mut tx,
                sqlx::query(INIT_CHECKPOINT).bind(CHECKPOINT).bind(now),
            )
            .await?;
            let moved = pg_run(
                &mut tx,
                sqlx::query(MOVE_CHECKPOINT)
                    .bind(to)
                    .bind(now)
                    .bind(CHECKPOINT)
                    .bind(from),
            )
            .await?;
            if moved != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for w in wanted {
                pg_run(
                    &mut tx,
                    sqlx::query(UPSERT_WORK)
                        .bind(w.event_id.as_str())
                        .bind(w.position)
                        .bind(now),
                )
                .await?;
                if w.resume {
                    pg_run(
                        &mut tx,
                        sqlx::query(RESUME_WORK).bind(w.event_id.as_str()).bind(now),
                    )
                    .await?;
                }
            }
            tx.commit().await?;
        }
    }
    Ok(true)
}

/// A claimed work row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub event_id: String,
    /// The position to record as done when the plan is empty.
    pub wanted_position: i64,
    pub attempts: i64,
}

/// Claims up to `limit` ready rows for `worker` until `lease_until`.
pub async fn claim(
    store: &Store,
    worker: &str,
    limit: usize,
    lease_until: i64,
) -> Result<Vec<Claim>, SagaError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let ready = "done_position < wanted_position AND parked = FALSE AND next_attempt_at <= $3 \
                 AND (claimed_by IS NULL OR lease_until < $3)";
    let rows = match store.pool() {
        DbPool::Postgres(p) => {
            let sql = format!(
                "UPDATE saga_work SET claimed_by = $1, lease_until = $2, updated_at_ms = $3 \
                 WHERE event_id IN (SELECT event_id FROM saga_work WHERE {ready} \
                 ORDER BY wanted_position LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING event_id, wanted_position, attempts"
            );
            sqlx::query(&sql)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .bind(limit as i64)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Claim {
                    event_id: r.get(0),
                    wanted_position: r.get(1),
                    attempts: r.get(2),
                })
                .collect()
        }
        DbPool::Sqlite(p) => {
            // One writer at a time: the UPDATE is the claim.
            let sql = format!(
                "UPDATE saga_work SET claimed_by = $1, lease_until = $2, updated_at_ms = $3 \
                 WHERE event_id IN (SELECT event_id FROM saga_work WHERE {ready} \
                 ORDER BY wanted_position LIMIT $4) \
                 RETURNING event_id, wanted_position, attempts"
            );
            sqlx::query(&sql)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .bind(limit as i64)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Claim {
                    event_id: r.get(0),
                    wanted_position: r.get(1),
                    attempts: r.get(2),
                })
                .collect()
        }
    };
    Ok(rows)
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
    /// Stopped before the plan was empty (shutdown, lease lost, store trouble): ready again now.
    Abandon,
}

/// Ends `worker`'s claim on `claim`'s row.
pub async fn release(
    store: &Store,
    worker: &str,
    claim: &Claim,
    how: &Release,
) -> Result<(), SagaError> {
    let now = now_ms();
    with_pool!(store.pool(), |p| {
        match how {
            Release::Done { state, reason } => {
                sqlx::query(
                    "UPDATE saga_work SET done_position = CASE WHEN $1 > done_position THEN $1 \
                     ELSE done_position END, claimed_by = NULL, lease_until = 0, attempts = 0, \
                     next_attempt_at = 0, state = $2, reason = $3, updated_at_ms = $4 \
                     WHERE event_id = $5 AND claimed_by = $6",
                )
                .bind(claim.wanted_position)
                .bind(*state)
                .bind(reason.as_deref())
                .bind(now)
                .bind(&claim.event_id)
                .bind(worker)
                .execute(p)
                .await?;
            }
            Release::RetryAt {
                at,
                attempts,
                reason,
            } => {
                sqlx::query(
                    "UPDATE saga_work SET claimed_by = NULL, lease_until = 0, attempts = $1, \
                     next_attempt_at = $2, state = 'retrying', reason = $3, updated_at_ms = $4 \
                     WHERE event_id = $5 AND claimed_by = $6",
                )
                .bind(*attempts)
                .bind(*at)
                .bind(reason.as_str())
                .bind(now)
                .bind(&claim.event_id)
                .bind(worker)
                .execute(p)
                .await?;
            }
            Release::Parked { reason } => {
                sqlx::query(
                    "UPDATE saga_work SET claimed_by = NULL, lease_until = 0, parked = TRUE, \
                     state = 'failed', reason = $1, updated_at_ms = $2 \
                     WHERE event_id = $3 AND claimed_by = $4",
                )
                .bind(reason.as_str())
                .bind(now)
                .bind(&claim.event_id)
                .bind(worker)
                .execute(p)
                .await?;
            }
            Release::Abandon => {
                sqlx::query(
                    "UPDATE saga_work SET claimed_by = NULL, lease_until = 0, updated_at_ms = $1 \
                     WHERE event_id = $2 AND claimed_by = $3",
                )
                .bind(now)
                .bind(&claim.event_id)
                .bind(worker)
                .execute(p)
                .await?;
            }
        }
        Ok::<(), SagaError>(())
    })
}

/// Lifts a parking and queues the event again (after a `Resume` was recorded).
pub async fn requeue(store: &Store, event_id: &str, wanted_position: i64) -> Result<(), SagaError> {
    let now = now_ms();
    with_pool!(store.pool(), |p| {
        sqlx::query(
            "INSERT INTO saga_work (event_id, wanted_position, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO UPDATE SET parked = FALSE, done_position = 0, \
             next_attempt_at = 0, attempts = 0, state = 'pending', reason = NULL, \
             wanted_position = CASE WHEN excluded.wanted_position > saga_work.wanted_position \
                 THEN excluded.wanted_position ELSE saga_work.wanted_position END, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(event_id)
        .bind(wanted_position.max(1))
        .bind(now)
        .execute(p)
        .await?;
        Ok::<(), SagaError>(())
    })
}

/// Counts for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

pub async fn counts(store: &Store) -> Result<Counts, SagaError> {
    let now = now_ms();
    let row = with_pool!(store.pool(), |p| {
        let r = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN done_position < wanted_position AND parked = FALSE THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN done_position < wanted_position AND parked = FALSE \
                   AND claimed_by IS NOT NULL AND lease_until >= $1 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0), \
               MIN(CASE WHEN done_position < wanted_position AND parked = FALSE \
                   AND (claimed_by IS NULL OR lease_until < $1) THEN next_attempt_at ELSE NULL END) \
             FROM saga_work",
        )
        .bind(now)
        .fetch_one(p)
        .await?;
        (
            r.try_get::<i64, _>(0)?,
            r.try_get::<i64, _>(1)?,
            r.try_get::<i64, _>(2)?,
            r.try_get::<Option<i64>, _>(3)?,
        )
    });
    Ok(Counts {
        pending: row.0,
        in_flight: row.1,
        failed: row.2,
        next_attempt_at: row.3,
    })
}

/// One row as status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkRow {
    pub event_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub parked: bool,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub updated_at_ms: i64,
}

/// Rows that failed (parked or with a parked participant), and the most recent row with an
/// error (for `last_error`).
pub async fn failed_rows(
    store: &Store,
    limit: i64,
) -> Result<(Vec<WorkRow>, Option<WorkRow>), SagaError> {
    let map = |r: &dyn RowLike| -> Result<WorkRow, sqlx::Error> { r.work_row() };
    let (failed, last) = with_pool!(store.pool(), |p| {
        let failed = sqlx::query(
            "SELECT event_id, state, reason, parked, attempts, next_attempt_at, updated_at_ms \
             FROM saga_work WHERE state = 'failed' ORDER BY updated_at_ms DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(p)
        .await?;
        let last = sqlx::query(
            "SELECT event_id, state, reason, parked, attempts, next_attempt_at, updated_at_ms \
             FROM saga_work WHERE reason IS NOT NULL ORDER BY updated_at_ms DESC LIMIT 1",
        )
        .fetch_optional(p)
        .await?;
        let failed = failed
            .iter()
            .map(|r| map(r))
            .collect::<Result<Vec<_>, _>>()?;
        let last = match last {
            Some(r) => Some(map(&r)?),
            None => None,
        };
        (failed, last)
    });
    Ok((failed, last))
}

/// A row of either backend read as a [`WorkRow`].
trait RowLike {
    fn work_row(&self) -> Result<WorkRow, sqlx::Error>;
}

macro_rules! row_like {
    ($row:ty) => {
        impl RowLike for $row {
            fn work_row(&self) -> Result<WorkRow, sqlx::Error> {
                Ok(WorkRow {
                    event_id: self.try_get(0)?,
                    state: self.try_get(1)?,
                    reason: self.try_get(2)?,
                    parked: self.try_get(3)?,
                    attempts: self.try_get(4)?,
                    next_attempt_at: self.try_get(5)?,
                    updated_at_ms: self.try_get(6)?,
                })
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
row_like!(sqlx::postgres::PgRow);

/// The marker the reader leaves when it moves its checkpoint while the integration is disabled
/// (the position it reached): a worker started later with the integration enabled queues every
/// OpenVLE event of the log up to there, then removes the marker.
pub const DISABLED_MARKER: &str = "moodle_saga_disabled_until";

const MARK_DISABLED: &str = "INSERT INTO saga_checkpoints (name, position, updated_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
     updated_at_ms = excluded.updated_at_ms";

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
        sqlx::query_scalar("SELECT position FROM saga_checkpoints WHERE name = $1")
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

/// Queues an event for processing now, up to `position` at least, without lifting a parking
/// (reconcile recorded corrections, or a backfill).
pub async fn touch(store: &Store, event_id: &str, position: i64) -> Result<(), SagaError> {
    let now = now_ms();
    with_pool!(store.pool(), |p| {
        sqlx::query(
            "INSERT INTO saga_work (event_id, wanted_position, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO UPDATE SET next_attempt_at = 0, \
             wanted_position = CASE WHEN excluded.wanted_position > saga_work.wanted_position \
                 THEN excluded.wanted_position ELSE saga_work.wanted_position END, \
             done_position = CASE WHEN saga_work.done_position >= excluded.wanted_position \
                 THEN excluded.wanted_position - 1 ELSE saga_work.done_position END, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(event_id)
        .bind(position.max(1))
        .bind(now)
        .execute(p)
        .await?;
        Ok::<(), SagaError>(())
    })
}

/// Claims one event's row (ready or waiting out a retry delay) unless another worker holds it
/// or it is parked.
pub async fn claim_event(
    store: &Store,
    worker: &str,
    event_id: &str,
    lease_until: i64,
) -> Result<Option<Claim>, SagaError> {
    let now = now_ms();
    let sql = "UPDATE saga_work SET claimed_by = $1, lease_until = $2, updated_at_ms = $3 \
               WHERE event_id = $4 AND done_position < wanted_position AND parked = FALSE \
               AND (claimed_by IS NULL OR lease_until < $3 OR claimed_by = $1) \
               RETURNING event_id, wanted_position, attempts";
    let claim = with_pool!(store.pool(), |p| {
        sqlx::query(sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(event_id)
            .fetch_optional(p)
            .await?
            .map(|r| Claim {
                event_id: r.get(0),
                wanted_position: r.get(1),
                attempts: r.get(2),
            })
    });
    Ok(claim)
}

/// The state of one OpenVLE event's work row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkState {
    /// `pending`, `retrying`, `in_sync`, `failed`, …
    pub state: String,
    pub reason: Option<String>,
    pub parked: bool,
    /// Processed up to the last position it was queued for.
    pub done: bool,
}

pub async fn work_state(store: &Store, event_id: &str) -> Result<Option<WorkState>, SagaError> {
    let row = with_pool!(store.pool(), |p| {
        match sqlx::query(
            "SELECT state, reason, parked, done_position >= wanted_position FROM saga_work \
             WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(p)
        .await?
        {
            Some(r) => Some(WorkState {
                state: r.try_get(0)?,
                reason: r.try_get(1)?,
                parked: r.try_get(2)?,
                done: r.try_get(3)?,
            }),
            None => None,
        }
    });
    Ok(row)
}
