//! Errors of the store, classified so callers can answer correctly (503 versus 500 versus 409).

use cqrs_es::AggregateError;

/// A boxed error that keeps its source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Anything that went wrong in the store (never a domain refusal: see [`CommandError`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded (connection refused or lost, pool timeout,
    /// SQLite busy for longer than the busy timeout). Transient: the API answers 503 and the
    /// caller may retry.
    #[error("event store unavailable: {0} (is the database running and DATABASE_URL right? retry later)")]
    Unavailable(#[source] BoxError),
    /// The database refused a statement for a reason other than availability.
    #[error("event store database error: {0}")]
    Database(#[source] BoxError),
    /// A stored row could not be turned into what the caller asked for (payload or metadata does
    /// not match the aggregate's event type: an upcaster is missing, or the row was edited).
    #[error("event at position {position} cannot be decoded: {message}")]
    Decode { position: i64, message: String },
    /// The store was configured wrongly (e.g. a DATABASE_URL with an unknown scheme).
    #[error("event store configuration: {0}")]
    Config(String),
    /// A schema migration failed (or the database holds migrations this binary does not know).
    #[error("event store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A read-only command found no database of the engine where DATABASE_URL points (no such
    /// file, no schema, or migrations this binary expects not applied): nothing was created.
    #[error("no event store to read: {0}")]
    NotAStore(String),
    /// Writing an export failed.
    #[error("export write failed: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// True when the error is transient unavailability (API: 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLite primary result codes that mean "try again later" (SQLITE_BUSY, SQLITE_LOCKED).
fn sqlite_transient(code: &str) -> bool {
    // Extended codes keep the primary code in the low byte (e.g. 517 = SQLITE_BUSY_SNAPSHOT).
    code.parse::<i64>()
        .map(|c| matches!(c & 0xff, 5 | 6))
        .unwrap_or(false)
}

/// PostgreSQL SQLSTATEs that mean the server is unreachable, restarting or out of connections.
fn pg_transient(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code == "53300" // too many connections
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        let transient = match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db
                .code()
                .map(|c| sqlite_transient(&c) || pg_transient(&c))
                .unwrap_or(false),
            _ => false,
        };
        if transient {
            StoreError::Unavailable(Box::new(err))
        } else {
            StoreError::Database(Box::new(err))
        }
    }
}

impl From<BoxError> for StoreError {
    /// Errors that come boxed out of cqrs-es: classified again when they are sqlx errors.
    fn from(err: BoxError) -> Self {
        match err.downcast::<sqlx::Error>() {
            Ok(sqlx_err) => StoreError::from(*sqlx_err),
            Err(other) => StoreError::Database(other),
        }
    }
}

/// Why a command was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain refused the command (nothing was appended). Carries the domain error with its
    /// stable code.
    #[error("{0}")]
    Rejected(E),
    /// Other writers kept changing the aggregate and the command still conflicted after the
    /// configured number of retries (nothing was appended). API: 409 concurrent modification.
    #[error("the aggregate kept changing concurrently; retries exhausted, nothing appended")]
    Conflict,
    /// The store failed. Nothing was appended, with one narrow exception: the command committed
    /// but the database went away before its rows could be looked up (retried first). Its
    /// events then carry the command's `command_id` in their metadata; an Idempotency-Key
    /// makes a client's retry safe either way.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of one attempt, as `execute` needs it: conflicts are retried.
pub(crate) enum Attempt<E: std::error::Error> {
    Conflict,
    Failed(CommandError<E>),
}

impl<E: std::error::Error> From<AggregateError<E>> for Attempt<E> {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(e) => Attempt::Failed(CommandError::Rejected(e)),
            AggregateError::AggregateConflict => Attempt::Conflict,
            AggregateError::DatabaseConnectionError(e) => {
                let store = match StoreError::from(e) {
                    StoreError::Database(inner) => StoreError::Unavailable(inner),
                    other => other,
                };
                Attempt::Failed(CommandError::Store(store))
            }
            AggregateError::DeserializationError(e) => {
                Attempt::Failed(CommandError::Store(StoreError::Decode {
                    position: -1,
                    message: format!(
                        "an event of this aggregate does not deserialize (missing upcaster or edited row?): {e}"
                    ),
                }))
            }
            AggregateError::UnexpectedError(e) => {
                Attempt::Failed(CommandError::Store(StoreError::from(e)))
            }
        }
    }
}
