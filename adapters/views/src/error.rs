//! Errors of the read models.

use store::StoreError;

/// Anything that stops the views from advancing.
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read-model statement failed.
    #[error("read-model database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored event does not decode into its aggregate's event type (missing upcaster or an
    /// edited row). The views stop there rather than skip it.
    #[error("event at position {position} cannot be decoded: {message}")]
    Decode { position: i64, message: String },
    /// A view could not be serialised or a stored view could not be read back.
    #[error("view JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing output (a story to stdout) failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// Another replay holds the replay lock (heartbeat younger than the takeover delay).
    #[error("another replay is running (lock held by {holder}, last heartbeat {age_secs}s ago); wait for it or retry later")]
    ReplayRunning { holder: String, age_secs: i64 },
}

impl ViewsError {
    /// True when retrying later may succeed (database unavailable or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            ViewsError::Store(e) => e.is_unavailable(),
            ViewsError::Database(e) => sqlx_transient(e),
            _ => false,
        }
    }
}

/// The same classification as the store's: connection trouble, pool exhaustion, SQLite busy or
/// locked, PostgreSQL connection and shutdown states.
pub(crate) fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .map(|c| {
                c.parse::<i64>()
                    .map(|n| matches!(n & 0xff, 5 | 6))
                    .unwrap_or(false)
                    || c.starts_with("08")
                    || c.starts_with("57P")
                    || c == "53300"
            })
            .unwrap_or(false),
        _ => false,
    }
}
