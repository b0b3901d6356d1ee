//! Connecting, migrating, and the [`Store`] handle.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::error::StoreError;

/// The DATABASE_URL used when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://openvle-moodle.db";

/// PostgreSQL advisory lock (transaction-scoped) taken by the `events_serialize_appends` trigger
/// before an identity value is drawn. Must match `migrations/postgres/0001_events.sql`. Other
/// crates must not use this key.
pub const APPEND_LOCK_KEY: i64 = 8_675_309_001;
/// PostgreSQL advisory lock (transaction-scoped) serialising audit sealers.
pub const SEAL_LOCK_KEY: i64 = 8_675_309_002;

/// Which database holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The connection pool, for crates that keep their own tables next to the log (the saga's
/// checkpoints and claims). Both pools are reference-counted: cloning is cheap.
#[derive(Debug, Clone)]
pub enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Tuning of a [`Store`]; `Default` suits the server.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size (SQLite: readers share it; writes are serialised by SQLite anyway).
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection before `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
    /// SQLite busy timeout: how long a writer waits for the write lock.
    pub sqlite_busy_timeout: Duration,
    /// How many times `execute` reloads and re-handles a command after an AggregateConflict.
    pub conflict_retries: u32,
    /// An Idempotency-Key still in flight after this long is considered abandoned (its request
    /// died) and may be taken over by a new request with the same body.
    pub idempotency_stale_after: Duration,
    /// Apply migrations at connect.
    pub migrate: bool,
    /// Open for reading only: nothing is created, migrated or written (SQLite opened read-only,
    /// PostgreSQL sessions in read-only transactions). See [`Store::open_read_only`].
    pub read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(10),
            conflict_retries: 32,
            idempotency_stale_after: Duration::from_secs(300),
            migrate: true,
            read_only: false,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) pool: DbPool,
    pub(crate) options: StoreOptions,
}

/// The event store: one log (`events`) for every aggregate, with a global commit-ordered
/// position, an audit hash chain and idempotency keys. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

pub(crate) static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub(crate) static POSTGRES_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");

pub(crate) fn backend_of(database_url: &str) -> Result<Backend, StoreError> {
    let lower = database_url.trim().to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::Config(format!(
            "DATABASE_URL {:?} is not supported: use sqlite://<path> (e.g. {DEFAULT_DATABASE_URL}, \
             created if missing) or postgres://user:password@host:port/database",
            redact(database_url)
        )))
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Connects to `sqlite://path` (file created if missing; WAL) or `postgres://…`, and applies
    /// the migrations.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        Store::connect_with(database_url, StoreOptions::default()).await
    }

    /// Connects without touching the schema (e.g. a read-only audit run, or `migrate` as its own
    /// step of a deployment).
    pub async fn connect_without_migrating(database_url: &str) -> Result<Store, StoreError> {
        Store::connect_with(
            database_url,
            StoreOptions {
                migrate: false,
                ..StoreOptions::default()
            },
        )
        .await
    }

    /// Connects with explicit options.
    pub async fn connect_with(
        database_url: &str,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let pool = match backend_of(database_url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(database_url.trim())
                    .map_err(|e| {
                        StoreError::Config(format!(
                            "DATABASE_URL {database_url:?} is not a valid SQLite URL ({e}); \
                             expected sqlite://<path>"
                        ))
                    })?
                    .create_if_missing(!options.read_only)
                    .read_only(options.read_only)
                    // FULL: a 202 means "durably appended", even across a power loss.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(options.sqlite_busy_timeout)
                    .foreign_keys(true);
                // WAL: readers never block the writer nor each other (set by the writers: a
                // read-only connection may not change the journal mode).
                let connect = if options.read_only {
                    connect
                } else {
                    connect.journal_mode(SqliteJournalMode::Wal)
                };
                if connect.get_filename().to_string_lossy() == ":memory:" {
                    return Err(StoreError::Config(
                        "DATABASE_URL sqlite::memory: is not supported: each pooled connection \
                         would get its own empty database; use sqlite://<path>"
                            .into(),
                    ));
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                DbPool::Sqlite(pool)
            }
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(database_url.trim()).map_err(|e| {
                    StoreError::Config(format!(
                        "DATABASE_URL {:?} is not a valid PostgreSQL URL ({e}); expected \
                         postgres://user:password@host:port/database",
                        redact(database_url)
                    ))
                })?;
                let connect = if options.read_only {
                    connect.options([("default_transaction_read_only", "on")])
                } else {
                    connect
                };
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                DbPool::Postgres(pool)
            }
        };
        let migrate = options.migrate;
        let store = Store {
            inner: Arc::new(Inner { pool, options }),
        };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the pending migrations of this backend (idempotent; concurrent runs are
    /// serialised by sqlx). The saga's migrations live in the same folders from 0100 upward.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner.pool {
            DbPool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
            DbPool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.inner.pool.backend()
    }

    pub fn pool(&self) -> &DbPool {
        &self.inner.pool
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Cheap liveness check of the database (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// What the database says is wrong with table `table` for a reader of `columns` (a table
    /// missing or a column lacking: the migrations did not reach it), or None when it has them.
    /// Creates nothing. Other failures (the database unavailable) are errors.
    pub async fn table_problem(
        &self,
        table: &str,
        columns: &str,
    ) -> Result<Option<String>, StoreError> {
        let sql = format!("SELECT {columns} FROM {table} LIMIT 0");
        let checked = crate::with_pool!(&self.inner.pool, |p| sqlx::query(&sql)
            .fetch_all(p)
            .await
            .map(|_| ()));
        match checked {
            Ok(()) => Ok(None),
            Err(sqlx::Error::Database(e)) => Ok(Some(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        crate::with_pool!(&self.inner.pool, |pool| pool.close().await)
    }
}

/// A failure to open the pool is unavailability unless the server answered with a real refusal.
fn connect_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Configuration(e) => {
            StoreError::Config(format!("DATABASE_URL could not be used: {e}"))
        }
        sqlx::Error::Database(_) => StoreError::from(err),
        other => StoreError::Unavailable(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(backend_of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(backend_of("postgres://a@b/c").ok(), Some(Backend::Postgres));
        assert_eq!(
            backend_of("postgresql://a@b/c").ok(),
            Some(Backend::Postgres)
        );
        let err = backend_of("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(err.contains("sqlite://"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
