//! The messages: their types, their bodies (the Standard Webhooks payload shape, `{type,
//! timestamp, data}`) and their ids.
//!
//! A message's id is derived from what it says (`msg_` + the UUIDv5 of its event, log position,
//! type and participant), so the same change always makes the same id: a page enqueued twice
//! (a reader that lost a race, a replay of the outbox's checkpoint) inserts nothing new, and every
//! retry carries the same `webhook-id`, by which receivers deduplicate.
//!
//! Personal data is kept to ids and codes: no names, emails or usernames, and not the free-text
//! reason of a park (it names Moodle accounts by username and email); the reason and its fix are
//! in `GET /api/v1/status` and `GET /api/v1/events/{id}`, behind the API's tokens.

use chrono::{DateTime, SecondsFormat, Utc};
use projections::view::MoodleState;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Namespace of message ids (UUIDv5): fixed, so ids are stable across versions and processes.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f70_656e_766c_652d_7765_6268_6f6f_6b73);

/// Every type a message may have, for the docs and the tests.
pub const TYPES: [&str; 7] = [
    "moodle.disabled",
    "moodle.not_linked",
    "moodle.pending",
    "moodle.in_sync",
    "moodle.failed",
    "moodle.parked",
    "moodle.participant_parked",
];

/// What happened, as a message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The event's Moodle state (the view's: `GET /api/v1/events/{id}` `moodle.state`) changed.
    State {
        state: MoodleState,
        previous: Option<MoodleState>,
        course_id: Option<i64>,
        /// The codes it is parked with (saga and participants), when `failed`.
        codes: Vec<String>,
        /// The event's own status: `deployed`, `ended` or `deleted`.
        event_status: String,
    },
    /// The saga of the whole event stopped at `step` and waits for a person (the state becomes
    /// `failed`: a `moodle.failed` follows unless the event was failed already).
    Parked { step: String, code: String },
    /// Moodle refused one participant, who alone waits for a person (likewise followed by
    /// `moodle.failed` unless the event was failed already).
    ParticipantParked {
        participant_id: String,
        code: String,
    },
}

/// A message ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub event_id: String,
    /// The log position it reports (a state: the last row of the commit that made it).
    pub position: i64,
    /// Order among the messages of one position: facts (0) before the state they lead to (1).
    pub ord: i32,
    pub kind: String,
    /// The exact bytes that are signed and sent, every time.
    pub body: String,
}

/// A message's `data` for a state change.
#[derive(Serialize)]
struct StateData<'a> {
    event_id: &'a str,
    state: &'static str,
    previous_state: Option<&'static str>,
    position: i64,
    event_status: &'a str,
    course_id: Option<i64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    codes: &'a [String],
}

impl Change {
    /// `moodle.<state>`, `moodle.parked` or `moodle.participant_parked`.
    pub fn kind(&self) -> String {
        match self {
            Change::State { state, .. } => format!("moodle.{}", state.as_str()),
            Change::Parked { .. } => "moodle.parked".into(),
            Change::ParticipantParked { .. } => "moodle.participant_parked".into(),
        }
    }

    fn ord(&self) -> i32 {
        match self {
            Change::State { .. } => 1,
            _ => 0,
        }
    }

    fn data(&self, event_id: &str, position: i64) -> Value {
        match self {
            Change::State {
                state,
                previous,
                course_id,
                codes,
                event_status,
            } => serde_json::to_value(StateData {
                event_id,
                state: state.as_str(),
                previous_state: previous.map(|p| p.as_str()),
                position,
                event_status,
                course_id: *course_id,
                codes,
            })
            .unwrap_or(Value::Null),
            Change::Parked { step, code } => json!({
                "event_id": event_id,
                "step": step,
                "code": code,
                "position": position,
            }),
            Change::ParticipantParked {
                participant_id,
                code,
            } => json!({
                "event_id": event_id,
                "participant_id": participant_id,
                "code": code,
                "position": position,
            }),
        }
    }

    /// The message of this change of `event_id` at `position`, recorded at `at` (the body's
    /// `timestamp`: when it happened, not when it is sent).
    pub fn message(&self, event_id: &str, position: i64, at: DateTime<Utc>) -> Message {
        let kind = self.kind();
        let participant = match self {
            Change::ParticipantParked { participant_id, .. } => participant_id.as_str(),
            _ => "",
        };
        let name = format!("{event_id}\n{position}\n{kind}\n{participant}");
        let id = format!(
            "msg_{}",
            Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).simple()
        );
        let body = json!({
            "type": kind,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": self.data(event_id, position),
        });
        Message {
            id,
            event_id: event_id.to_string(),
            position,
            ord: self.ord(),
            kind,
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_bodies_have_the_standard_shape() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let change = Change::State {
            state: MoodleState::InSync,
            previous: Some(MoodleState::Pending),
            course_id: Some(7),
            codes: vec![],
            event_status: "deployed".into(),
        };
        let a = change.message("e1", 42, at);
        let b = change.message("e1", 42, at);
        assert_eq!(a, b);
        assert!(a.id.starts_with("msg_") && a.id.len() == 36, "{}", a.id);
        assert_ne!(a.id, change.message("e1", 43, at).id);
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["type"], "moodle.in_sync");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            body["data"],
            json!({"event_id": "e1", "state": "in_sync", "previous_state": "pending",
                   "position": 42, "event_status": "deployed", "course_id": 7})
        );
        let p = Change::ParticipantParked {
            participant_id: "s1".into(),
            code: "invalid_username".into(),
        }
        .message("e1", 42, at);
        assert_eq!(p.ord, 0);
        assert!(TYPES.contains(&p.kind.as_str()));
        assert_ne!(p.id, a.id);
    }
}
