//! Errors of the read models.

use store::StoreError;

/// Anything that stops the views from advancing.
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    /// Reading the log or a read-model statement failed. Statements of this crate go through
    /// the store's error so that "unavailable" (retry later) is decided in one place.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// The read-model tables are missing or older than this binary: the migrations, the only
    /// path to the schema, were not applied.
    #[error("the read-model tables are missing or out of date ({0}); apply the migrations (`openvle-moodle migrate`)")]
    Schema(String),
}

impl From<sqlx::Error> for ViewsError {
    fn from(e: sqlx::Error) -> Self {
        ViewsError::Store(StoreError::from(e))
    }
}

impl ViewsError {
    /// True when retrying later may succeed (database unavailable or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            ViewsError::Store(e) => e.is_unavailable(),
            _ => false,
        }
    }
}
