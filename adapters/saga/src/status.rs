//! `openvle-moodle status` / `retry` and their API counterparts.

use chrono::{DateTime, TimeZone, Utc};
use domain::moodle_sync::{MoodleSync, MoodleSyncCommand};
use serde::Serialize;
use store::{CommandError, CommandMeta, Store};

use projections::saga::fix_for;

use crate::db;
use crate::SagaError;

/// An OpenVLE event whose saga waits for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedEvent {
    pub event_id: String,
    /// True when the whole saga is parked; false when only participants are.
    pub saga_parked: bool,
    pub reason: Option<String>,
    /// The codes it is parked with (the saga's, its participants'): what `retry --all --code`
    /// and docs/operations.md go by.
    pub codes: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    /// The saga's own park (None when only participants are parked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub park: Option<Park>,
    /// Its parked participants.
    pub participants: Vec<ParkedParticipant>,
}

/// Why a saga is parked, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Park {
    pub step: String,
    pub code: String,
    pub reason: String,
    pub fix: &'static str,
}

/// A participant Moodle refused, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedParticipant {
    pub participant_id: String,
    pub code: String,
    pub reason: String,
    pub fix: &'static str,
}

/// The most recent problem the saga met (it may have been retried successfully since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub event_id: String,
    /// `retrying`, `failed`, or the state the event reached afterwards.
    pub state: String,
    pub reason: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub at: Option<DateTime<Utc>>,
}

/// Where the saga stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SagaStatus {
    /// The reader's checkpoint (global position).
    pub checkpoint: i64,
    /// The log's head.
    pub head: i64,
    /// head - checkpoint: log rows not yet read by the saga.
    pub lag: i64,
    /// OpenVLE events with Moodle work outstanding (not parked).
    pub pending: i64,
    /// Of those, being processed now.
    pub in_flight: i64,
    /// Events waiting for a person, newest first (at most 100).
    pub parked: Vec<ParkedEvent>,
    /// How many parked events carry each code (all of them, not only the 100 listed; an event
    /// parked with two codes counts under both).
    pub parked_by_code: std::collections::BTreeMap<String, u64>,
    pub last_error: Option<LastError>,
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    if ms <= 0 {
        None
    } else {
        Utc.timestamp_millis_opt(ms).single()
    }
}

/// Parked events listed by [`status`] (the counts cover all).
const LISTED: usize = 100;

/// The saga's status (creates its tables if the store's migrations did not).
pub async fn status(store: &Store) -> Result<SagaStatus, SagaError> {
    db::ensure_schema(store).await?;
    let checkpoint = db::checkpoint(store).await?;
    let head = store.head().await?;
    let counts = db::counts(store).await?;
    let (failed, last) = db::failed_rows(store, i64::from(u32::MAX)).await?;
    let mut parked = Vec::with_capacity(failed.len().min(LISTED));
    let mut parked_by_code = std::collections::BTreeMap::new();
    for r in failed {
        let sync = record_of(store, &r.event_id).await?;
        for code in park_codes(&sync) {
            *parked_by_code.entry(code).or_insert(0u64) += 1;
        }
        if parked.len() >= LISTED {
            continue;
        }
        parked.push(ParkedEvent {
            codes: park_codes(&sync),
            park: sync.parked.as_ref().map(|(step, code, reason)| Park {
                step: step.clone(),
                code: code.clone(),
                reason: reason.clone(),
                fix: fix_for(code),
            }),
            participants: sync
                .participants
                .iter()
                .filter_map(|(id, p)| {
                    p.parked.as_ref().map(|(code, reason)| ParkedParticipant {
                        participant_id: id.clone(),
                        code: code.clone(),
                        reason: reason.clone(),
                        fix: fix_for(code),
                    })
                })
                .collect(),
            event_id: r.event_id,
            saga_parked: r.parked,
            reason: r.reason,
            since: at(r.updated_at_ms),
        });
    }
    // The attempt the record counted (the work row's count restarts with every claim).
    let last_attempt = match &last {
        Some(r) => record_of(store, &r.event_id)
            .await?
            .last_failure
            .map(|f| i64::from(f.attempt)),
        None => None,
    };
    Ok(SagaStatus {
        checkpoint,
        head,
        lag: (head - checkpoint).max(0),
        pending: counts.pending,
        in_flight: counts.in_flight,
        parked,
        parked_by_code,
        last_error: last.map(|r| LastError {
            event_id: r.event_id,
            state: r.state,
            reason: r.reason.unwrap_or_default(),
            attempts: last_attempt.unwrap_or(r.attempts).max(r.attempts),
            next_attempt_at: at(r.next_attempt_at),
            at: at(r.updated_at_ms),
        }),
    })
}

/// Resumes the saga of OpenVLE event `event_id`: records `Resumed { by }` when it (or one of its
/// participants) is parked, and queues the event again at once (also when it was only waiting
/// out a retry delay). Returns whether a `Resumed` was recorded.
pub async fn retry(store: &Store, event_id: &str, by: &str) -> Result<bool, SagaError> {
    resume(
        store,
        event_id,
        MoodleSyncCommand::Resume { by: by.to_string() },
        by,
    )
    .await
}

/// Records an operator's `command` (a resume) on the event's record and queues the event again
/// at once. Returns whether anything was recorded (something was parked).
async fn resume(
    store: &Store,
    event_id: &str,
    command: MoodleSyncCommand,
    by: &str,
) -> Result<bool, SagaError> {
    db::ensure_schema(store).await?;
    let meta = CommandMeta::new(by.to_string());
    let appended = store
        .execute::<MoodleSync>(event_id, command, &meta)
        .await
        .map_err(|e| match e {
            CommandError::Store(s) => SagaError::Store(s),
            other => SagaError::Record(other.to_string()),
        })?;
    let position = match appended.last_position() {
        Some(p) => p,
        None => store.head().await?,
    };
    db::requeue(store, event_id, position).await?;
    Ok(!appended.is_empty())
}

/// The codes an event is parked with: its saga's and its participants'.
pub fn park_codes(sync: &MoodleSync) -> Vec<String> {
    let mut codes: Vec<String> = sync.parked.iter().map(|(_, c, _)| c.clone()).collect();
    for p in sync.participants.values() {
        if let Some((code, _)) = &p.parked {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        }
    }
    codes
}

/// An event's saga record (empty when there is none).
async fn record_of(store: &Store, event_id: &str) -> Result<MoodleSync, SagaError> {
    Ok(store
        .load::<MoodleSync>(event_id)
        .await?
        .map(|(s, _)| s)
        .unwrap_or_default())
}

/// [`park_codes`] of an event's record.
async fn codes_of(store: &Store, event_id: &str) -> Result<Vec<String>, SagaError> {
    Ok(park_codes(&record_of(store, event_id).await?))
}

/// Retries one parked participant of OpenVLE event `event_id`: records `ParticipantResumed`
/// when they are parked and queues the event again at once. Returns whether they were parked.
pub async fn retry_participant(
    store: &Store,
    event_id: &str,
    participant_id: &str,
    by: &str,
) -> Result<bool, SagaError> {
    let command = MoodleSyncCommand::ResumeParticipant {
        participant_id: participant_id.to_string(),
        by: by.to_string(),
    };
    resume(store, event_id, command, by).await
}

/// Resumes every parked event, or (`code`) those parked with that code (the saga's own park or a
/// participant's), as [`retry`] does one. Returns the ids resumed, in the order of the status.
pub async fn retry_parked(
    store: &Store,
    code: Option<&str>,
    by: &str,
) -> Result<Vec<String>, SagaError> {
    db::ensure_schema(store).await?;
    let (rows, _) = db::failed_rows(store, i64::from(u32::MAX)).await?;
    let mut resumed = Vec::new();
    for row in rows {
        if let Some(code) = code {
            if !codes_of(store, &row.event_id)
                .await?
                .iter()
                .any(|c| c == code)
            {
                continue;
            }
        }
        if retry(store, &row.event_id, by).await? {
            resumed.push(row.event_id);
        }
    }
    Ok(resumed)
}
