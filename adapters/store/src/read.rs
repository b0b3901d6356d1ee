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

use crate::error::StoreError;
use crate::model::{LogQuery, StoredEvent};
use crate::sql::{event_from_row, EVENT_COLUMNS};
use crate::store::Store;

/// Largest page any reader returns.
pub const MAX_PAGE: usize = 10_000;
/// Page size of a `LogQuery` whose `limit` is 0.
pub const DEFAULT_PAGE: usize = 100;

/// The aggregate types whose streams make up one OpenVLE event's history.
const HISTORY_TYPES: [&str; 2] = [
    <domain::event::VleEvent as Aggregate>::TYPE,
    <domain::moodle_sync::MoodleSync as Aggregate>::TYPE,
];

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

/// A SELECT of event rows built clause by clause: each bound parameter gets the next `$n`.
struct Select {
    sql: String,
    params: Vec<Param>,
}

impl Select {
    fn new(head: &str) -> Select {
        Select {
            sql: head.to_string(),
            params: Vec::new(),
        }
    }

    /// Appends `clause` followed by the placeholder of `param` (e.g. `" AND aggregate_id ="`).
    fn bind(mut self, clause: &str, param: Param) -> Select {
        self.params.push(param);
        self.sql.push_str(clause);
        self.sql.push_str(&format!(" ${}", self.params.len()));
        self
    }

    fn push(mut self, text: &str) -> Select {
        self.sql.push_str(text);
        self
    }
}

impl Store {
    /// Runs a SELECT of event rows built by [`Select`].
    async fn select_events(&self, select: Select) -> Result<Vec<StoredEvent>, StoreError> {
        crate::with_pool!(&self.inner.pool, |pool| {
            let mut q = sqlx::query(&select.sql);
            for p in select.params {
                q = match p {
                    Param::Int(v) => q.bind(v),
                    Param::Text(v) => q.bind(v),
                    Param::Time(v) => q.bind(v),
                };
            }
            q.fetch_all(pool)
                .await?
                .iter()
                .map(event_from_row)
                .collect()
        })
    }

    /// Folds an aggregate from its stream (event-store mode, exactly as cqrs-es does).
    /// `None` when the aggregate has no event. Rows are streamed, not collected.
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, u64)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
             ORDER BY sequence"
        );
        let mut aggregate = A::default();
        let mut last: Option<u64> = None;
        crate::with_pool!(&self.inner.pool, |pool| {
            let mut rows = sqlx::query(&sql)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let event = event_from_row(&row)?;
                aggregate.apply(event.decode::<A>()?);
                last = Some(event.sequence.max(0) as u64);
            }
        });
        Ok(last.map(|seq| (aggregate, seq)))
    }

    /// Every aggregate of type `A`, folded, by id. For the few and small (environments): each
    /// is held in memory.
    pub async fn load_all<A: Aggregate>(&self) -> Result<Vec<(String, A)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 \
             ORDER BY aggregate_id, sequence"
        );
        let mut out: Vec<(String, A)> = Vec::new();
        crate::with_pool!(&self.inner.pool, |pool| {
            let mut rows = sqlx::query(&sql).bind(A::TYPE).fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let event = event_from_row(&row)?;
                let decoded = event.decode::<A>()?;
                match out.last_mut() {
                    Some((id, aggregate)) if *id == event.aggregate_id => aggregate.apply(decoded),
                    _ => {
                        let mut aggregate = A::default();
                        aggregate.apply(decoded);
                        out.push((event.aggregate_id.clone(), aggregate));
                    }
                }
            }
        });
        Ok(out)
    }

    /// Last sequence of a stream (0 when it has none); reads the primary key only.
    pub async fn last_sequence(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<u64, StoreError> {
        let seq: i64 = crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_scalar(
                "SELECT COALESCE(MAX(sequence), 0) FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(pool)
            .await?
        });
        Ok(seq.max(0) as u64)
    }

    /// One stream, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let select = Select::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE"))
            .bind(" aggregate_type =", Param::Text(aggregate_type.into()))
            .bind(" AND aggregate_id =", Param::Text(aggregate_id.into()))
            .push(" ORDER BY sequence");
        self.select_events(select).await
    }

    /// Both streams of one OpenVLE event (`event` and `moodle_sync`, same id), interleaved in
    /// position order: what the domain asked and what the saga did, as it happened.
    pub async fn read_event_history(&self, event_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let select = Select::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE"))
            .bind(" aggregate_id =", Param::Text(event_id.into()))
            .bind(
                " AND aggregate_type IN (",
                Param::Text(HISTORY_TYPES[0].into()),
            )
            .bind(",", Param::Text(HISTORY_TYPES[1].into()))
            .push(") ORDER BY position");
        self.select_events(select).await
    }

    /// [`Store::read_event_history`] strictly before position `before`: how a reader that
    /// starts in the middle of the log (the views, the webhook outbox) rebuilds an event's fold
    /// up to the row it is at.
    pub async fn read_event_history_before(
        &self,
        event_id: &str,
        before: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let select = Select::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE"))
            .bind(" aggregate_id =", Param::Text(event_id.into()))
            .bind(
                " AND aggregate_type IN (",
                Param::Text(HISTORY_TYPES[0].into()),
            )
            .bind(",", Param::Text(HISTORY_TYPES[1].into()))
            .bind(") AND position <", Param::Int(before))
            .push(" ORDER BY position");
        self.select_events(select).await
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
        let select = Select::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE"))
            .bind(" position >", Param::Int(after))
            .bind(" ORDER BY position LIMIT", Param::Int(limit as i64));
        self.select_events(select).await
    }

    /// A filtered page of the global log (audit API). Continue with `after` = the last
    /// returned position.
    pub async fn read_page(&self, q: &LogQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let sqlite = self.backend() == crate::Backend::Sqlite;
        let time = |t: &DateTime<Utc>, round_up: bool| {
            if sqlite {
                Param::Text(sqlite_time(t, round_up))
            } else {
                Param::Time(*t)
            }
        };
        let mut select = Select::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE"))
            .bind(" position >", Param::Int(q.after));
        if let Some(stream) = &q.stream {
            select = select.bind(" AND aggregate_id =", Param::Text(stream.clone()));
        }
        if let Some(t) = &q.aggregate_type {
            select = select.bind(" AND aggregate_type =", Param::Text(t.clone()));
        }
        if let Some(t) = &q.event_type {
            select = select.bind(" AND event_type =", Param::Text(t.clone()));
        }
        if let Some(from) = &q.from {
            select = select.bind(" AND recorded_at >=", time(from, true));
        }
        if let Some(to) = &q.to {
            select = select.bind(" AND recorded_at <=", time(to, false));
        }
        let select = select.bind(" ORDER BY position LIMIT", Param::Int(limit as i64));
        self.select_events(select).await
    }

    /// Highest committed position, 0 when the log is empty.
    pub async fn head(&self) -> Result<i64, StoreError> {
        Ok(crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
                .fetch_one(pool)
                .await?
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

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
