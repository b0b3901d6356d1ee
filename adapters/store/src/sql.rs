//! One SQL convention for both backends.
//!
//! Every statement is written once, with `$1…$n` placeholders: sqlx's SQLite driver reads `$n`
//! as PostgreSQL does (the tests bind them out of order and repeated to prove it), so no text is
//! rewritten and no body is written twice. [`with_pool!`](crate::with_pool) runs a statement on
//! whichever pool the store holds: its body is written once and compiled for each backend, so a
//! query that does not type-check on one of them fails the build.
//!
//! The dialect ([`Backend`]) spells out only what truly differs:
//! - row locking: PostgreSQL locks rows (`FOR UPDATE`, `SKIP LOCKED`); SQLite has one writer at a
//!   time, so the statement that writes is already the lock and the clauses are empty;
//! - serialising a transaction: SQLite's `BEGIN IMMEDIATE` takes the write lock at once, while
//!   PostgreSQL takes a transaction-scoped advisory lock after `BEGIN`;
//! - reading a text field of a JSON column (`json_extract` against `->>`).
//!
//! What is deliberately absent: upserts (`ON CONFLICT … DO UPDATE … excluded`) and `RETURNING`
//! read the same on both (SQLite ≥ 3.35), and the current time is never read in SQL: callers
//! bind it, so a test can move the clock (the saga's leases).

use sqlx::{FromRow, Row};

use crate::error::StoreError;
use crate::model::StoredEvent;
use crate::store::{Backend, DbPool};

/// Runs `$body` with `$p` bound to the SQLite or the PostgreSQL pool (the body is compiled for
/// each, so it must type-check on both). Errors convert with `?` as in any `async` block of the
/// caller.
///
/// ```ignore
/// let head: i64 = store::with_pool!(store.pool(), |p| {
///     sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events WHERE position > $1")
///         .bind(after)
///         .fetch_one(p)
///         .await?
/// });
/// ```
#[macro_export]
macro_rules! with_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::DbPool::Sqlite($p) => $body,
            $crate::DbPool::Postgres($p) => $body,
        }
    };
}

pub use crate::with_pool;

impl DbPool {
    /// The backend of this pool, for its dialect.
    pub fn backend(&self) -> Backend {
        match self {
            DbPool::Sqlite(_) => Backend::Sqlite,
            DbPool::Postgres(_) => Backend::Postgres,
        }
    }
}

impl Backend {
    /// Appended to a `SELECT` whose rows the transaction is about to change: PostgreSQL locks
    /// them until the commit; SQLite's single writer needs nothing.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Like [`for_update`](Backend::for_update), skipping rows another transaction holds (so
    /// concurrent claimers take different rows instead of queueing behind each other).
    pub fn for_update_skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The statement that opens a transaction serialised against every other such transaction
    /// (with [`advisory_lock`](Backend::advisory_lock) right after it): on SQLite taking the
    /// write lock at `BEGIN` means what the transaction reads cannot be stale.
    pub fn begin_serialised(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// The statement (one `$1`: the lock's `i64` key) that serialises a transaction with others
    /// using the same key, when the backend needs one: PostgreSQL's transaction-scoped advisory
    /// lock. SQLite needs none after [`begin_serialised`](Backend::begin_serialised).
    pub fn advisory_lock(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SELECT pg_advisory_xact_lock($1)"),
        }
    }

    /// The text of field `key` of the JSON column `column` (both trusted identifiers written in
    /// the code, never input); `a.b` names field `b` of object `a`.
    pub fn json_text(self, column: &str, key: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Backend::Postgres if key.contains('.') => {
                format!("{column}#>>'{{{}}}'", key.replace('.', ","))
            }
            Backend::Postgres => format!("{column}->>'{key}'"),
        }
    }
}

/// The columns an `events` row is selected with, in [`EventRow`]'s order.
pub const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at";

/// One `events` row as both backends decode it (JSON columns are `jsonb` on PostgreSQL and text
/// on SQLite; sqlx reads both as [`serde_json::Value`]). Public only because
/// [`event_from_row`]'s bounds name it: callers want the [`StoredEvent`] it becomes.
#[derive(Debug, FromRow)]
pub struct EventRow {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Decodes one row selected with [`EVENT_COLUMNS`] on either backend (also for crates with their
/// own queries of `events`). A row that does not decode is a [`StoreError::Decode`] naming its
/// position when that much could be read.
pub fn event_from_row<'r, R>(row: &'r R) -> Result<StoredEvent, StoreError>
where
    R: Row,
    EventRow: FromRow<'r, R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let decode_err = |position: i64, e: sqlx::Error| StoreError::Decode {
        position,
        message: e.to_string(),
    };
    let position: i64 = row.try_get("position").map_err(|e| decode_err(-1, e))?;
    let r = EventRow::from_row(row).map_err(|e| decode_err(position, e))?;
    Ok(StoredEvent {
        position: r.position,
        event_id: domain::event_id_of(&r.aggregate_type, &r.aggregate_id, r.sequence.max(0) as u64),
        aggregate_type: r.aggregate_type,
        aggregate_id: r.aggregate_id,
        sequence: r.sequence,
        event_type: r.event_type,
        event_version: r.event_version,
        payload: r.payload,
        metadata: r.metadata,
        recorded_at: r.recorded_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_differ_only_where_they_must() {
        assert_eq!(Backend::Sqlite.for_update(), "");
        assert_eq!(Backend::Postgres.for_update(), " FOR UPDATE");
        assert_eq!(Backend::Sqlite.for_update_skip_locked(), "");
        assert_eq!(
            Backend::Postgres.for_update_skip_locked(),
            " FOR UPDATE SKIP LOCKED"
        );
        assert_eq!(Backend::Sqlite.advisory_lock(), None);
        assert_eq!(
            Backend::Sqlite.json_text("metadata", "command_id"),
            "json_extract(metadata, '$.command_id')"
        );
        assert_eq!(
            Backend::Postgres.json_text("metadata", "command_id"),
            "metadata->>'command_id'"
        );
    }
}
