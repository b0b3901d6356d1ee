//! Ordered readers of the log.
//!
//! cqrs-es's own `stream_all_events` orders by per-aggregate sequence, not by commit, so every
//! reader that needs the history of the system (audit, saga, projections, export) goes through
//! the global `position` here. All queries walk an index (`events_position`,
//! `events_aggregate_id_position`, `events_event_type_position` or the primary key) and return
//! bounded pages, so replaying millions of events runs in constant memory.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::model::{LogQuery, StoredEvent};
use crate::store::{DbPool, Store};

/// Largest page any reader returns.
pub const MAX_PAGE: usize = 10_000;
/// Page size of a `LogQuery` whose `limit` is 0.
pub const DEFAULT_PAGE: usize = 100;

pub const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at";

/// The aggregate types whose streams make up one OpenVLE event's history.
const HISTORY_TYPES: [&str; 2] = [
    <domain::event::VleEvent as Aggregate>::TYPE,
    <domain::moodle_sync::MoodleSync as Aggregate>::TYPE,
];

fn decode_err(position: i64, what: &str, e: sqlx::Error) -> StoreError {
    StoreError::Decode {
        position,
        message: format!("column {what}: {e}"),
    }
}

/// One `events` row, selected with [`EVENT_COLUMNS`], as a [`StoredEvent`]. The two backends'
/// row types share no decoding trait for these columns, so one macro writes both functions.
macro_rules! event_from_row {
    ($name:ident, $row:ty) => {
        /// Decodes one row selected with [`EVENT_COLUMNS`] (for crates with their own queries).
        pub fn $name(row: &$row) -> Result<StoredEvent, StoreError> {
            let position: i64 = row
                .try_get("position")
                .map_err(|e| decode_err(-1, "position", e))?;
            let get = |what: &str, e: sqlx::Error| decode_err(position, what, e);
            let aggregate_type: String = row
                .try_get("aggregate_type")
                .map_err(|e| get("aggregate_type", e))?;
            let aggregate_id: String = row
                .try_get("aggregate_id")
                .map_err(|e| get("aggregate_id", e))?;
            let sequence: i64 = row.try_get("sequence").map_err(|e| get("sequence", e))?;
            Ok(StoredEvent {
                position,
                event_id: domain::event_id_of(
                    &aggregate_type,
                    &aggregate_id,
                    sequence.max(0) as u64,
                ),
                event_type: row
                    .try_get("event_type")
                    .map_err(|e| get("event_type", e))?,
                event_version: row
                    .try_get("event_version")
                    .map_err(|e| get("event_version", e))?,
                payload: row.try_get("payload").map_err(|e| get("payload", e))?,
                metadata: row.try_get("metadata").map_err(|e| get("metadata", e))?,
                recorded_at: row
                    .try_get("recorded_at")
                    .map_err(|e| get("recorded_at", e))?,
                aggregate_type,
                aggregate_id,
                sequence,
            })
        }
    };
}

event_from_row!(event_from_sqlite, SqliteRow);
event_from_row!(event_from_pg, PgRow);

/// A bound parameter of a dynamically built query.
enum Param {
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
}

/// SQLite keeps `recorded_at` as ISO-8601 text with milliseconds, so time bounds compare as
/// text of the same shape: `from` is rounded up and `to` down to the millisecond.
fn sqlite_time(t: &DateTime<Utc>, round_up: bool) -> String {
    let millis = t.timestamp_millis();
    // (Not `is_multiple_of`: the workspace's MSRV is 1.80.)
    let below_millis = t.timestamp_subsec_nanos() % 1_000_000;
    let exact = below_millis == 0;
    let millis = if round_up && !exact {
        millis + 1
    } else {
        millis
    };
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or(*t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Store {
    /// Runs a SELECT of event rows with bound parameters (placeholders written as `?`, rewritten
    /// to `$n` for PostgreSQL).
    async fn select_events(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.inner.pool {
            DbPool::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = match p {
                        Param::Int(v) => q.bind(v),
                        Param::Text(v) => q.bind(v),
                        Param::Time(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(pool).await?;
                rows.iter().map(event_from_sqlite).collect()
            }
            DbPool::Postgres(pool) => {
                let sql = numbered_placeholders(sql);
                let mut q = sqlx::query(&sql);
                for p in params {
                    q = match p {
                        Param::Int(v) => q.bind(v),
                        Param::Text(v) => q.bind(v),
                        Param::Time(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(pool).await?;
                rows.iter().map(event_from_pg).collect()
            }
        }
    }

    /// Folds an aggregate from its stream (event-store mode, exactly as cqrs-es does).
    /// `None` when the aggregate has no event. Rows are streamed, not collected.
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, u64)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = ? AND aggregate_id = ? \
             ORDER BY sequence"
        );
        let mut aggregate = A::default();
        let mut last: Option<u64> = None;
        match &self.inner.pool {
            DbPool::Sqlite(pool) => {
                let mut rows = sqlx::query(&sql)
                    .bind(A::TYPE)
                    .bind(aggregate_id)
                    .fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let event = event_from_sqlite(&row)?;
                    aggregate.apply(event.decode::<A>()?);
                    last = Some(event.sequence.max(0) as u64);
                }
            }
            DbPool::Postgres(pool) => {
                let sql = numbered_placeholders(&sql);
                let mut rows = sqlx::query(&sql)
                    .bind(A::TYPE)
                    .bind(aggregate_id)
                    .fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let event = event_from_pg(&row)?;
                    aggregate.apply(event.decode::<A>()?);
                    last = Some(event.sequence.max(0) as u64);
                }
            }
        }
        Ok(last.map(|seq| (aggregate, seq)))
    }

    /// Last sequence of a stream (0 when it has none); reads the primary key only.
    pub async fn last_sequence(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<u64, StoreError> {
        let sql = "SELECT COALESCE(MAX(sequence), 0) FROM events \
                   WHERE aggregate_type = ? AND aggregate_id = ?";
        let seq: i64 = match &self.inner.pool {
            DbPool::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .fetch_one(pool)
                    .await?
            }
            DbPool::Postgres(pool) => {
                sqlx::query_scalar(&numbered_placeholders(sql))
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(seq.max(0) as u64)
    }

    /// One stream, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = ? AND aggregate_id = ? \
             ORDER BY sequence"
        );
        self.select_events(
            &sql,
            vec![
                Param::Text(aggregate_type.into()),
                Param::Text(aggregate_id.into()),
            ],
        )
        .await
    }

    /// Both streams of one OpenVLE event (`event` and `moodle_sync`, same id), interleaved in
    /// position order: what the domain asked and what the saga did, as it happened.
    pub async fn read_event_history(&self, event_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_id = ? \
             AND aggregate_type IN (?, ?) ORDER BY position"
        );
        self.select_events(
            &sql,
            vec![
                Param::Text(event_id.into()),
                Param::Text(HISTORY_TYPES[0].into()),
                Param::Text(HISTORY_TYPES[1].into()),
            ],
        )
        .await
    }

    /// The global log after position `after`, in position order, at most `limit` rows (clamped
    /// to [`MAX_PAGE`]).
    ///
    /// Gap-safe: on PostgreSQL appends are serialised by an advisory lock taken before the
    /// position is drawn, so what a reader sees is always a prefix of the final log (plus
    /// permanent holes left by rolled-back appends). A reader that stores the last position it
    /// processed as its checkpoint never skips an event that commits later.
    pub async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        self.select_events(&sql, vec![Param::Int(after), Param::Int(limit as i64)])
            .await
    }

    /// A filtered page of the global log (audit API). Continue with `after` = the last
    /// returned position.
    pub async fn read_page(&self, q: &LogQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let sqlite = self.backend() == crate::Backend::Sqlite;
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ?");
        let mut params = vec![Param::Int(q.after)];
        if let Some(stream) = &q.stream {
            sql.push_str(" AND aggregate_id = ?");
            params.push(Param::Text(stream.clone()));
        }
        if let Some(t) = &q.aggregate_type {
            sql.push_str(" AND aggregate_type = ?");
            params.push(Param::Text(t.clone()));
        }
        if let Some(t) = &q.event_type {
            sql.push_str(" AND event_type = ?");
            params.push(Param::Text(t.clone()));
        }
        if let Some(from) = &q.from {
            sql.push_str(" AND recorded_at >= ?");
            params.push(if sqlite {
                Param::Text(sqlite_time(from, true))
            } else {
                Param::Time(*from)
            });
        }
        if let Some(to) = &q.to {
            sql.push_str(" AND recorded_at <= ?");
            params.push(if sqlite {
                Param::Text(sqlite_time(to, false))
            } else {
                Param::Time(*to)
            });
        }
        sql.push_str(" ORDER BY position LIMIT ?");
        params.push(Param::Int(limit as i64));
        self.select_events(&sql, params).await
    }

    /// Highest committed position, 0 when the log is empty.
    pub async fn head(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
        let head: i64 = match &self.inner.pool {
            DbPool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            DbPool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        };
        Ok(head)
    }

    /// A pager over the global log, for replays and exports: each `next_page` returns the next
    /// rows in position order (empty when caught up).
    pub fn pager(&self, after: i64, page_size: usize) -> LogPager {
        LogPager {
            store: self.clone(),
            after,
            page_size: page_size.clamp(1, MAX_PAGE),
        }
    }
}

/// Pages through the global log from a position (see [`Store::pager`]).
#[derive(Debug, Clone)]
pub struct LogPager {
    store: Store,
    after: i64,
    page_size: usize,
}

impl LogPager {
    /// The next page (empty when there is nothing after the current position yet; calling
    /// again later picks up new events).
    pub async fn next_page(&mut self) -> Result<Vec<StoredEvent>, StoreError> {
        let page = self.store.read_all(self.after, self.page_size).await?;
        if let Some(last) = page.last() {
            self.after = last.position;
        }
        Ok(page)
    }

    /// The position of the last event returned (the checkpoint to store).
    pub fn position(&self) -> i64 {
        self.after
    }
}

/// Rewrites `?` placeholders to PostgreSQL's `$1, $2, …` (our SQL has no `?` in literals).
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(
            numbered_placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
    }

    #[test]
    fn sqlite_time_rounding() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sqlite_time(&t, false), "2024-05-01T10:00:00.123Z");
        assert_eq!(sqlite_time(&t, true), "2024-05-01T10:00:00.124Z");
        let exact = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sqlite_time(&exact, true), "2024-05-01T10:00:00.123Z");
    }
}
