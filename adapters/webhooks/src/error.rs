//! What can go wrong, in one type: configuration mistakes carry a stable `code` (what a person
//! looks up in docs/webhooks.md) and name the variable; nothing here ever holds the secret.

use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A setting is missing or malformed. `var` names the variable, `code` is stable.
    #[error("{var}: {message} ({code})")]
    Config {
        var: &'static str,
        code: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook table is missing or lacks a column: the migrations did not run.
    #[error("webhook schema: {0}")]
    Schema(String),
    /// A row of the log could not be folded (a payload of another shape).
    #[error("folding the log: {0}")]
    Fold(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
}

impl From<sqlx::Error> for WebhookError {
    fn from(e: sqlx::Error) -> Self {
        WebhookError::Store(StoreError::from(e))
    }
}

impl WebhookError {
    /// The stable code of a configuration error (None for the others).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            WebhookError::Config { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth trying again later (the database is away), rather than stopping.
    pub fn is_transient(&self) -> bool {
        matches!(self, WebhookError::Store(e) if e.is_unavailable())
    }
}
