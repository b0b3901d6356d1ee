//! Signed webhooks of openvle-moodle, so OpenVLE core need not poll: a POST to
//! `OPENVLE_WEBHOOK_URL` for every change of an event's Moodle state and for each park, signed as
//! the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256>`). docs/webhooks.md is the receiver's guide.
//!
//! - **Durable outbox** ([`outbox`]): a reader follows the log from its own checkpoint
//!   (`webhook_checkpoint`, apart from the saga's) and enqueues messages in the transaction that
//!   moves it; nothing is lost across a crash, nothing enqueued twice.
//! - **At least once, in order per event** ([`Webhooks::run`]): a message is sent until a 2xx,
//!   with exponential backoff and jitter, the same `webhook-id` and body every time; an event's
//!   next message waits for the one before to be delivered or dead. Receivers deduplicate by
//!   `webhook-id`.
//! - **Never in the saga's way**: its own task and tables; it only reads the log.
//! - **Visible** ([`status`], metrics `openvle_webhook_*`, [`describe_metrics`]); dead messages
//!   stay until [`redeliver`]ed.
//! - **The secret stays secret** ([`WebhookSecret`]): held in `secrecy`, never formatted.
//!
//! Modules: `sign` (the signature), `message` (types, bodies, ids), `outbox` (the reader), `db`
//! (the tables), `deliver` (one attempt and its verdict), `run` (the loops), `status`.

mod config;
mod db;
mod deliver;
mod error;
mod message;
pub mod outbox;
mod run;
mod sign;
mod status;

pub use config::{parse_url, shown_url, WebhookConfig, URL_VAR};
pub use db::{ensure_schema, CHECKPOINT};
pub use error::WebhookError;
pub use message::{Change, Message, TYPES};
pub use run::{describe_metrics, Webhooks};
pub use sign::{WebhookSecret, SECRET_PREFIX, SECRET_VAR};
pub use status::{redeliver, status, FailedMessage, WebhookStatus};
