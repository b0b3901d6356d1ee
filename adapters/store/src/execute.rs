//! Running commands through cqrs-es.

use std::time::Duration;

use cqrs_es::{Aggregate, AggregateError};
use postgres_es::postgres_cqrs;
use sqlite_es::sqlite_cqrs;

use crate::error::{Attempt, CommandError, StoreError};
use crate::model::{Appended, CommandMeta};
use crate::store::{DbPool, Store};

impl Store {
    /// Runs a command through cqrs-es and returns what it appended.
    ///
    /// - **Event-store mode only** (`sqlite_cqrs` / `postgres_cqrs`): cqrs-es 0.5.0's aggregate
    ///   and snapshot modes apply new events twice before saving the snapshot.
    /// - No `Query` is attached: cqrs-es runs queries inline after the commit, at most once, and
    ///   loses them on a crash. Readers follow the log by position instead.
    /// - A version clash (`AggregateConflict`: another writer appended to the same aggregate
    ///   first) is retried up to [`StoreOptions::conflict_retries`](crate::StoreOptions) times,
    ///   each time reloading the aggregate and re-handling the command, so no update is lost and
    ///   the rules see the fresh state. Still conflicting afterwards: [`CommandError::Conflict`].
    /// - `meta` becomes the metadata of every appended event; its `command_id` is how the
    ///   appended rows (and their positions) are found after the commit.
    /// - After the commit the audit chain is sealed up to the head. A sealing failure is logged,
    ///   not returned: the events are durably appended and the next seal covers them.
    ///
    /// Returns an empty [`Appended`] when the command produced no event.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + 'static,
        A::Command: Clone + Send + Sync,
        A::Error: Send + Sync + 'static,
    {
        self.execute_fn::<A>(aggregate_id, meta, |_attempt| command.clone())
            .await
    }

    /// Like [`execute`](Store::execute) for commands that are not `Clone`: `command(attempt)`
    /// builds the command for each attempt (attempt 0 first).
    pub async fn execute_fn<A>(
        &self,
        aggregate_id: &str,
        meta: &CommandMeta,
        mut command: impl FnMut(u32) -> A::Command + Send,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + 'static,
        A::Command: Send + Sync,
        A::Error: Send + Sync + 'static,
    {
        let metadata = meta.to_map();
        let retries = self.inner.options.conflict_retries;
        let mut attempt: u32 = 0;
        let before = loop {
            let before = self.last_sequence(A::TYPE, aggregate_id).await?;
            let result: Result<(), AggregateError<A::Error>> = match &self.inner.pool {
                DbPool::Sqlite(pool) => {
                    sqlite_cqrs::<A>(pool.clone(), Vec::new(), ())
                        .execute_with_metadata(aggregate_id, command(attempt), metadata.clone())
                        .await
                }
                DbPool::Postgres(pool) => {
                    postgres_cqrs::<A>(pool.clone(), Vec::new(), ())
                        .execute_with_metadata(aggregate_id, command(attempt), metadata.clone())
                        .await
                }
            };
            match result {
                Ok(()) => break before,
                Err(err) => match Attempt::from(err) {
                    Attempt::Conflict if attempt < retries => {
                        tracing::debug!(
                            aggregate_type = A::TYPE,
                            aggregate_id,
                            attempt,
                            "aggregate conflict, reloading and retrying"
                        );
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                    Attempt::Conflict => {
                        tracing::warn!(
                            aggregate_type = A::TYPE,
                            aggregate_id,
                            attempts = attempt + 1,
                            "aggregate conflict persisted after retries"
                        );
                        return Err(CommandError::Conflict);
                    }
                    Attempt::Failed(e) => return Err(e),
                },
            }
        };

        // Committed: find what was appended. A failure here would make a committed command
        // look failed, so the (read-only, indexed) lookup is retried before giving up.
        let command_id = meta.command_id.to_string();
        let mut lookup = 0;
        let appended = loop {
            match self
                .appended_by(A::TYPE, aggregate_id, before, &command_id)
                .await
            {
                Ok(found) => break found,
                Err(e) if lookup < 3 => {
                    tracing::warn!(error = %e, command_id, "looking up appended rows failed; retrying");
                    lookup += 1;
                    tokio::time::sleep(Duration::from_millis(100 << lookup)).await;
                }
                Err(e) => return Err(CommandError::Store(e)),
            }
        };
        let appended = match appended {
            Some(a) => a,
            None => Appended {
                positions: Vec::new(),
                last_sequence: before,
            },
        };
        if !appended.positions.is_empty() {
            if let Err(e) = self.seal().await {
                tracing::warn!(error = %e, "audit seal after append failed; the next seal covers these events");
            }
        }
        Ok(appended)
    }

    /// The rows of this stream after `before` written by `command_id`.
    async fn appended_by(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        before: u64,
        command_id: &str,
    ) -> Result<Option<Appended>, StoreError> {
        let sql = format!(
            "SELECT position, sequence FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
             AND {} = $4 ORDER BY sequence",
            self.backend().json_text("metadata", "command_id")
        );
        let rows: Vec<(i64, i64)> = crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(before as i64)
                .bind(command_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.last().map(|&(_, last_seq)| Appended {
            positions: {
                let mut p: Vec<i64> = rows.iter().map(|&(pos, _)| pos).collect();
                p.sort_unstable();
                p
            },
            last_sequence: last_seq.max(0) as u64,
        }))
    }
}

/// A short, jittered pause before retrying a clash (1, 2, 4 … 64 ms plus up to 100 %).
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(6);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u64 * base / 1000;
    Duration::from_millis(base + jitter)
}
