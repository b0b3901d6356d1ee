//! Where the webhooks stand, for `GET /api/v1/status`, `openvle-moodle webhooks status` and
//! people; and the way back for a dead message (`webhooks redeliver`).

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use store::Store;

use crate::db;
use crate::error::WebhookError;

/// A message whose last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedMessage {
    /// The `webhook-id` it is sent with.
    pub message_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending` (will be retried) or `dead`.
    pub status: String,
    pub error: String,
    pub attempts: i64,
    pub at: Option<DateTime<Utc>>,
}

/// The outbox at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookStatus {
    /// The reader's checkpoint (global position).
    pub checkpoint: i64,
    /// The log's head.
    pub head: i64,
    /// head - checkpoint: log rows the outbox has not read yet.
    pub lag: i64,
    /// Messages not delivered yet (being sent or waiting for a retry).
    pub pending: i64,
    /// Messages given up on, kept until redelivered.
    pub dead: i64,
    /// Delivered messages still kept (deleted a week after delivery).
    pub delivered: i64,
    /// Seconds since the oldest pending message was enqueued (None: none pending).
    pub oldest_pending_age_secs: Option<i64>,
    /// The most recent failed attempt of a message not delivered since.
    pub last_error: Option<FailedMessage>,
    /// Dead messages, newest first (at most 100).
    pub dead_messages: Vec<FailedMessage>,
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0)
        .then(|| Utc.timestamp_millis_opt(ms).single())
        .flatten()
}

/// The outbox's status (reads only).
pub async fn status(store: &Store) -> Result<WebhookStatus, WebhookError> {
    db::ensure_schema(store).await?;
    let checkpoint = db::checkpoint(store).await?;
    let head = store.head().await?;
    let counts = db::counts(store).await?;
    let now = Utc::now().timestamp_millis();
    let last_error = db::last_failure(store).await?.map(
        |(message_id, event_id, kind, status, error, attempts, when)| FailedMessage {
            message_id,
            event_id,
            kind,
            status,
            error,
            attempts,
            at: at(when),
        },
    );
    let dead_messages = db::dead(store, 100)
        .await?
        .into_iter()
        .map(
            |(message_id, event_id, kind, error, attempts, when)| FailedMessage {
                message_id,
                event_id,
                kind,
                status: "dead".into(),
                error: error.unwrap_or_default(),
                attempts,
                at: at(when),
            },
        )
        .collect();
    Ok(WebhookStatus {
        checkpoint,
        head,
        lag: (head - checkpoint).max(0),
        pending: counts.pending,
        dead: counts.dead,
        delivered: counts.delivered,
        oldest_pending_age_secs: counts.oldest_pending_ms.map(|t| (now - t).max(0) / 1000),
        last_error,
        dead_messages,
    })
}

/// Sends dead messages again, from a fresh first attempt with the same ids: every one, those of
/// one OpenVLE event, or one message. Returns how many were queued. A message redelivered may
/// arrive after later messages of its event (they were not held up by it once it was dead): its
/// `data.position` tells where it belongs.
pub async fn redeliver(
    store: &Store,
    event_id: Option<&str>,
    message_id: Option<&str>,
) -> Result<u64, WebhookError> {
    db::ensure_schema(store).await?;
    db::redeliver(store, event_id, message_id, Utc::now().timestamp_millis()).await
}
