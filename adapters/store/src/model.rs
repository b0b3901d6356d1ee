//! The values the store hands out and takes in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

/// Metadata keys written into every event's cqrs-es metadata map.
pub mod meta_keys {
    pub const COMMAND_ID: &str = "command_id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const ACTOR: &str = "actor";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
}

/// Who asked for a command and why; stored as the metadata of every event the command appends.
///
/// `command_id` is unique per command and is how `execute` finds the rows it appended (cqrs-es
/// returns neither positions nor ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMeta {
    pub command_id: Uuid,
    pub idempotency_key: Option<String>,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

impl CommandMeta {
    /// A fresh command by `actor`: new command id, correlation id = command id, no causation.
    pub fn new(actor: impl Into<String>) -> Self {
        let command_id = Uuid::new_v4();
        CommandMeta {
            command_id,
            idempotency_key: None,
            actor: actor.into(),
            correlation_id: command_id,
            causation_id: None,
        }
    }

    /// The same, carrying an Idempotency-Key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The same, continuing a correlation (e.g. the saga acting on an event it read).
    pub fn with_correlation(mut self, correlation_id: Uuid, causation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self.causation_id = causation_id;
        self
    }

    /// The cqrs-es metadata map (absent optional values are left out).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(5);
        map.insert(meta_keys::COMMAND_ID.into(), self.command_id.to_string());
        map.insert(meta_keys::ACTOR.into(), self.actor.clone());
        map.insert(
            meta_keys::CORRELATION_ID.into(),
            self.correlation_id.to_string(),
        );
        if let Some(key) = &self.idempotency_key {
            map.insert(meta_keys::IDEMPOTENCY_KEY.into(), key.clone());
        }
        if let Some(causation) = self.causation_id {
            map.insert(meta_keys::CAUSATION_ID.into(), causation.to_string());
        }
        map
    }
}

/// What one `execute` appended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// Global positions of the appended rows, ascending (empty: the command produced no event).
    pub positions: Vec<i64>,
    /// The aggregate's last sequence after the command (unchanged when nothing was appended;
    /// 0 for an aggregate that still has no event).
    pub last_sequence: u64,
}

impl Appended {
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Position of the last appended row, if any.
    pub fn last_position(&self) -> Option<i64> {
        self.positions.last().copied()
    }
}

/// One row of the log, as every reader (audit API, saga, projections, export) sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Global, commit-ordered position (gaps possible after rolled-back appends on PostgreSQL).
    pub position: i64,
    /// Deterministic id: `domain::event_id_of(aggregate_type, aggregate_id, sequence)`.
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Per-aggregate sequence, from 1.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// Deserializes the payload into the aggregate's event type (as cqrs-es does, no upcasting).
    pub fn decode<A: Aggregate>(&self) -> Result<A::Event, StoreError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| StoreError::Decode {
            position: self.position,
            message: format!(
                "{} {} v{} of {}/{} is not a {} event: {e}",
                self.event_type,
                self.sequence,
                self.event_version,
                self.aggregate_type,
                self.aggregate_id,
                A::TYPE
            ),
        })
    }

    /// A metadata value (`command_id`, `actor`, …) when present and a string.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.as_str())
    }
}

/// A filtered page of the global log (audit API). All filters are optional and combine with AND.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogQuery {
    /// Rows with a position strictly greater than this (0: from the start).
    pub after: i64,
    /// At most this many rows (clamped to [`MAX_PAGE`](crate::MAX_PAGE); 0 means the default page).
    pub limit: usize,
    /// Aggregate id (an OpenVLE event's both streams, or an environment).
    pub stream: Option<String>,
    pub aggregate_type: Option<String>,
    pub event_type: Option<String>,
    /// recorded_at >= from
    pub from: Option<DateTime<Utc>>,
    /// recorded_at <= to
    pub to: Option<DateTime<Utc>>,
}

/// Where an Idempotency-Key stands when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IdempotencyState {
    /// First use: the caller owns the key; it must call `idempotency_complete` or `_abort`.
    New,
    /// The key was used with the same body and answered: send this answer again, append nothing.
    Replay { status: u16, body: String },
    /// The key was used with another body: 409 `idempotency_key_reused`.
    Mismatch,
    /// The first request with this key is still being processed: 409, retry later.
    InFlight,
}

/// Why verification stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The event at a sealed position is not the one that was sealed there.
    Reordered,
    /// The event at a sealed position was changed after sealing.
    Edited,
    /// A sealed position has no event any more.
    Deleted,
    /// An event sits at or below the sealed head but was never sealed (inserted afterwards).
    Unsealed,
    /// The chain itself is inconsistent (an audit row's prev_hash does not link to the
    /// previous row's hash).
    LinkBroken,
}

/// Where the audit chain broke first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub position: i64,
    /// What was found there, for a person.
    pub reason: String,
    pub kind: BreakKind,
}

/// Result of walking the log against the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// No break found (events after `sealed_head` are not yet sealed; that is not a break).
    pub ok: bool,
    /// Positions checked (sealed entries and events up to the sealed head).
    pub checked: u64,
    /// Highest sealed position (0: nothing sealed).
    pub sealed_head: i64,
    /// Highest position in the log.
    pub head: i64,
    pub first_break: Option<ChainBreak>,
}
