//! What the saga does with a step's outcome: the facts it records about a failure, and whether
//! the event then goes on, waits, retries later or is parked for a person.
//!
//! Pure: the worker runs the step, then asks [`after_step`] (or [`interrupted`] when something
//! other than Moodle stopped the claim) and only carries the answer out. Two attempt counters
//! meet here, and each rule says which one it moves:
//! - the record's `attempts` (failures of the current step in a row, folded from `StepFailed`):
//!   a step failure is attempt `recorded.attempts + 1`, and it is what gives up after
//!   `max_attempts`;
//! - the work row's `attempts` (what the claim was handed with): a failure outside Moodle counts
//!   there, a hand-back that is nobody's failure (a step budget, a concurrent writer, a
//!   duplication still landing) does not.

use domain::moodle_sync::{MoodleSync, MoodleSyncEvent};

use super::outstanding::SyncState;
use super::plan::Step;
use super::retry::Backoff;

/// Why a step stopped (Moodle's error as the saga judges it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Moodle's `errorcode` (or the client's code for a transport failure).
    pub code: String,
    pub message: String,
    /// Worth retrying (an outage, or an unknown outcome the next look-up resolves).
    pub transient: bool,
    /// The participant the failure is about, when it is one participant's.
    pub participant_id: Option<String>,
}

impl Failure {
    /// A failure no retry cures.
    pub fn permanent(code: &str, message: String) -> Failure {
        Failure {
            code: code.to_string(),
            message,
            transient: false,
            participant_id: None,
        }
    }
}

/// The retry rules of a worker (`SagaConfig::max_attempts`, `backoff_base`, `backoff_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Transient failures of one step in a row before the event is parked. 0: never parked.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// What the worker does next with the event it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Plan again within this claim.
    Continue,
    /// The plan is empty: `state` (`in_sync`, `failed`, …) and why it failed, if it did.
    Done {
        state: &'static str,
        reason: Option<String>,
    },
    /// Stop here and make the event ready again at once (another writer moved the record).
    HandBack,
    /// The plan is empty, and the wish changes by itself at `at` (ms): plan again then, or
    /// at once when the event changes first.
    WakeAt { at: i64, reason: String },
    /// Nothing failed, but nothing can go on before `at` (ms since the epoch).
    Wait {
        at: i64,
        attempts: i64,
        reason: String,
    },
    /// Try again after `delay_ms`, with the work row's attempts set to `attempts`.
    Retry {
        delay_ms: i64,
        attempts: i64,
        reason: String,
    },
    /// Nothing more until an operator resumes.
    Park { reason: String },
}

/// A step as it came back from Moodle (after [`settle`]).
#[derive(Debug, Clone, Copy)]
pub struct StepResult<'a> {
    pub step: &'a Step,
    pub failure: Option<&'a Failure>,
    /// Nothing failed but the step must wait until then (ms), for this reason.
    pub wait_until: Option<(i64, &'a str)>,
}

/// Moodle creates a duplicated course (with its shortname) before it restores the template into
/// it, and adds the enrolment methods at the end of the restore. After a duplication whose answer
/// was lost, the saga adopts that course by shortname and may enrol before the restore is done:
/// Moodle then answers `wsnoinstance`. For an adopted course that answer is retried with backoff
/// (and parks after `max_attempts`); for a course whose creation answer arrived it is the
/// configuration problem it says.
pub fn settle(mut failure: Failure, recorded: &MoodleSync) -> Failure {
    if !failure.transient && failure.code == "wsnoinstance" && recorded.course_adopted {
        failure.transient = true;
    }
    failure
}

/// Whether a step that failed transiently `attempt` times in a row is given up on.
pub fn gave_up(max_attempts: u32, attempt: u32) -> bool {
    max_attempts > 0 && attempt >= max_attempts
}

/// The attempt number a failure of the next step will carry.
pub fn attempt_of(recorded: &MoodleSync) -> u32 {
    recorded.attempts.saturating_add(1)
}

/// The facts that record `failure` of `step` as attempt `attempt`: `StepFailed`, then `Parked`
/// when it is permanent or the last attempt allowed. `at_sequence` is how far the event's own
/// stream was read ([`Desired::sequence`](super::Desired)): a later course-level change lifts
/// the park ([`super::park_stands`]).
pub fn failure_facts(
    step: &Step,
    failure: &Failure,
    attempt: u32,
    max_attempts: u32,
    at_sequence: u64,
) -> Vec<MoodleSyncEvent> {
    let cause = step.cause().event_id;
    let mut facts = vec![MoodleSyncEvent::StepFailed {
        step: step.name().to_string(),
        code: failure.code.clone(),
        message: failure.message.clone(),
        attempt,
        transient: failure.transient,
        participant_id: failure.participant_id.clone(),
        caused_by: cause,
    }];
    let parked = |reason: String| MoodleSyncEvent::Parked {
        step: step.name().to_string(),
        code: failure.code.clone(),
        reason,
        caused_by: cause,
        at_sequence: Some(at_sequence),
    };
    if !failure.transient {
        facts.push(parked(failure.message.clone()));
    } else if gave_up(max_attempts, attempt) {
        facts.push(parked(format!(
            "gave up after {attempt} attempts (max_attempts {max_attempts}): {}",
            failure.message
        )));
    }
    facts
}

/// Whether `facts` announce a duplication: its call is then due before a graceful stop hands
/// the event back (the next process would otherwise have to wait the announcement out).
pub fn call_due(facts: &[MoodleSyncEvent]) -> bool {
    facts
        .iter()
        .any(|f| matches!(f, MoodleSyncEvent::CourseDuplicationStarted { .. }))
}

/// The step's outcome as the `openvle_saga_steps_total{outcome}` label.
pub fn outcome_label(result: &StepResult<'_>) -> &'static str {
    match result.failure {
        None if result.wait_until.is_some() => "waiting",
        None => "ok",
        Some(f) if f.transient => "transient",
        Some(_) => "parked",
    }
}

/// What comes after a step whose facts were recorded. `fenced`: another writer appended to the
/// record meanwhile; `attempt`: [`attempt_of`] the record the step was planned from;
/// `claim_attempts`: the work row's count; `jitter`: any number (the worker draws a random one).
pub fn after_step(
    result: &StepResult<'_>,
    fenced: bool,
    attempt: u32,
    claim_attempts: i64,
    policy: &RetryPolicy,
    jitter: u64,
) -> Next {
    let name = result.step.name();
    match (result.failure, result.wait_until) {
        // Not a failure: no attempt is counted, nothing is parked.
        (None, Some((at, reason))) => Next::Wait {
            at,
            attempts: claim_attempts,
            reason: reason.to_string(),
        },
        (None, None) if fenced => Next::HandBack,
        (None, None) => Next::Continue,
        (Some(f), _) if f.transient && gave_up(policy.max_attempts, attempt) => Next::Park {
            reason: format!(
                "{name} failed {attempt} times in a row, parked (max_attempts {}): {}: {}",
                policy.max_attempts, f.code, f.message
            ),
        },
        (Some(f), _) if f.transient => Next::Retry {
            delay_ms: policy.backoff.delay_ms(attempt, jitter),
            attempts: i64::from(attempt),
            reason: format!("{}: {}", f.code, f.message),
        },
        (Some(f), _) => Next::Park {
            reason: format!("{name} failed: {}: {}", f.code, f.message),
        },
    }
}

/// What stopped a claim other than a step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interruption {
    /// The claim ran its `max_steps_per_claim` steps and the plan still has `step`.
    StepBudget { step: &'static str, steps: u32 },
    /// The integration is on but the worker has no Moodle client.
    NoClient,
    /// The record kept changing while the facts were appended.
    RecordConflict,
    /// The record refused the facts (the aggregate's reason, already recorded as `Parked`).
    RecordRefused(String),
    /// An event of the log cannot be decoded: retrying reads the same bytes.
    LogUnreadable(String),
    /// Anything else (the database unreachable, …): worth another try.
    Error(String),
}

/// What comes after an [`Interruption`], for a claim handed with `claim_attempts`.
pub fn interrupted(
    why: Interruption,
    claim_attempts: i64,
    policy: &RetryPolicy,
    jitter: u64,
) -> Next {
    let first = || policy.backoff.delay_ms(1, jitter);
    match why {
        Interruption::StepBudget { step, steps } => Next::Retry {
            delay_ms: first(),
            attempts: claim_attempts,
            reason: format!("still {step} after {steps} steps; handed back"),
        },
        Interruption::NoClient => Next::Retry {
            delay_ms: i64::try_from(policy.backoff.max.as_millis()).unwrap_or(i64::MAX),
            attempts: claim_attempts.saturating_add(1),
            reason: "the Moodle integration is enabled but this worker has no Moodle client".into(),
        },
        Interruption::RecordConflict => Next::Retry {
            delay_ms: first(),
            attempts: claim_attempts,
            reason: "the saga's record kept changing concurrently".into(),
        },
        Interruption::RecordRefused(reason) => Next::Park { reason },
        Interruption::LogUnreadable(e) => Next::Park {
            reason: format!("the log cannot be read: {e}"),
        },
        Interruption::Error(e) => {
            let attempts = claim_attempts.saturating_add(1);
            let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
            Next::Retry {
                delay_ms: policy.backoff.delay_ms(attempt, jitter),
                attempts,
                reason: e,
            }
        }
    }
}

/// The end of a claim whose plan is empty, with why the event still needs a person when the
/// plan's state is `Failed`.
pub fn done(state: SyncState, recorded: &MoodleSync) -> Next {
    Next::Done {
        state: state.as_str(),
        reason: failed_reason(state, recorded),
    }
}

/// What follows an empty plan: done, or, when the wish changes by itself later (an `at_start`
/// course to show at the start), a wake-up then (not an attempt, not a failure).
pub fn idle(plan: &super::plan::Plan, recorded: &MoodleSync) -> Next {
    match plan.wake_at_ms {
        Some(at) if plan.state != SyncState::Failed => Next::WakeAt {
            at,
            reason: "the course is to be shown at the event's start".to_string(),
        },
        _ => done(plan.state, recorded),
    }
}

/// Why an event with an empty plan still needs a person.
pub fn failed_reason(state: SyncState, recorded: &MoodleSync) -> Option<String> {
    if state != SyncState::Failed {
        return None;
    }
    if let Some((step, code, reason)) = &recorded.parked {
        return Some(format!("{step} failed: {code}: {reason}"));
    }
    let parts: Vec<String> = recorded
        .participants
        .iter()
        .filter_map(|(id, p)| {
            p.parked
                .as_ref()
                .map(|(code, reason)| format!("participant {id}: {code}: {reason}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests;
