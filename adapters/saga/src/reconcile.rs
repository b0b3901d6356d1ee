//! Reconcile Moodle (the third meaning of "replay"): fold the log into the Moodle state it
//! implies, read the state Moodle holds, show the difference, and with consent converge it through
//! the saga, recording what was seen and what was done.
//!
//! Per OpenVLE event with a Moodle side (deployed from an environment with a template course):
//!
//! 1. **Observe** (read-only, at most five calls): the recorded course by id, the course by its
//!    shortname `ovle-<id>` when the recorded one is absent (or none is recorded), the course's
//!    enrolments (all, then active only: the difference is the suspended ones, roles included),
//!    and whether the recorded Moodle accounts still exist.
//! 2. **Compare** ([`projections::saga::reconcile`], pure): drift rows
//!    (`event_id, kind, what, expected, actual`) and corrections.
//! 3. By [`ReconcileMode`]:
//!    - `DryRun`: nothing is written (the command without `--apply`).
//!    - `Report` (the scheduled reconcile without `MOODLE_RECONCILE_APPLY`): records
//!      `DriftObserved { applied: false }` when the drift differs from the last one recorded, so
//!      that the event view shows it; Moodle is not touched.
//!    - `Apply`: records `DriftObserved { applied: true }` and the corrections (facts about what
//!      Moodle holds: `CourseLost`, `UserLinkLost`, `Unenrolled`, `Suspended`, `Enrolled`,
//!      `CourseShown`/`CourseHidden`, an adopted `CourseDuplicated`) in one append, fenced against
//!      a concurrent writer; queues the event's work row and runs the worker's step loop on it
//!      once (the planner turns the new recorded state into the Moodle calls, each recorded as a
//!      saga event caused by the domain event whose state it restores); observes again and
//!      records the drift that remains (none, normally).
//!
//! Events deployed while the integration was switched off are covered twice: the worker queues
//! them when it starts enabled (see `Worker::feed`), and reconcile shows them as `course_missing`
//! and, with `--apply`, queues and provisions them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cqrs_es::Aggregate;
use serde::Serialize;
use uuid::Uuid;

use domain::event::VleEvent;
use domain::moodle_sync::{DriftKind, DriftNote, MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use moodle::{CourseField, EnrolledFilter, MoodleClient, MoodleError, UserField};
use projections::saga::{
    reconcile, to_observe, Desired, DriftRow, Observe, Observed, ObservedCourse, ObservedEnrolment,
};
use store::{CommandError, CommandMeta};

use crate::{db, SagaError, Worker};

/// `MOODLE_RECONCILE_INTERVAL` / `MOODLE_RECONCILE_APPLY` is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileConfigError {
    #[error(
        "MOODLE_RECONCILE_INTERVAL: {0:?} is not a whole number of seconds (unset or 0: no scheduled reconcile)"
    )]
    Interval(String),
    #[error("MOODLE_RECONCILE_APPLY: {0:?} is not a boolean (true or false)")]
    Apply(String),
}

/// The scheduled reconcile of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSchedule {
    /// Time between two passes over every event.
    pub interval: Duration,
    /// Converge Moodle (true) or only report the drift (false, the default).
    pub apply: bool,
}

impl ReconcileSchedule {
    pub const INTERVAL_VAR: &'static str = "MOODLE_RECONCILE_INTERVAL";
    pub const APPLY_VAR: &'static str = "MOODLE_RECONCILE_APPLY";

    /// From the variables' values: None when the interval is unset, empty or 0.
    pub fn parse(
        interval: Option<&str>,
        apply: Option<&str>,
    ) -> Result<Option<ReconcileSchedule>, ReconcileConfigError> {
        let apply = match apply.map(str::trim).filter(|v| !v.is_empty()) {
            None => false,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(ReconcileConfigError::Apply(v.to_string())),
            },
        };
        let Some(interval) = interval.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let secs: u64 = interval
            .parse()
            .map_err(|_| ReconcileConfigError::Interval(interval.to_string()))?;
        Ok((secs > 0).then(|| ReconcileSchedule {
            interval: Duration::from_secs(secs),
            apply,
        }))
    }

    /// From the environment.
    pub fn from_env() -> Result<Option<ReconcileSchedule>, ReconcileConfigError> {
        let var = |name: &str| std::env::var(name).ok();
        ReconcileSchedule::parse(
            var(Self::INTERVAL_VAR).as_deref(),
            var(Self::APPLY_VAR).as_deref(),
        )
    }
}

/// What a reconcile pass may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileMode {
    /// Show the drift; write nothing, call nothing that changes Moodle.
    DryRun,
    /// Record the drift (`DriftObserved`) for the views and metrics; do not touch Moodle.
    Report,
    /// Record the drift and its corrections, and converge Moodle through the saga.
    Apply,
}

/// The reconcile of one OpenVLE event that had something to say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReconcile {
    pub event_id: String,
    /// The differences seen.
    pub drift: Vec<DriftRow>,
    /// Facts recorded as corrections (Apply).
    pub corrections: usize,
    /// The differences left after the saga converged (Apply).
    pub remaining: Vec<DriftRow>,
    /// The saga's work state afterwards (Apply): `in_sync`, `retrying`, `failed`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saga_state: Option<String>,
    /// Why it did not (fully) converge, or why it could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a reconcile pass saw and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileReport {
    pub mode: ReconcileMode,
    /// OpenVLE events with a Moodle side compared.
    pub checked: usize,
    /// Every difference seen, in event order.
    pub drift: Vec<DriftRow>,
    /// Every difference left at the end (Apply: after converging; otherwise the same as `drift`).
    pub remaining: Vec<DriftRow>,
    /// Events with drift, or with a problem.
    pub events: Vec<EventReconcile>,
    /// Events that could not be compared (Moodle unreachable, …).
    pub errors: usize,
}

impl ReconcileReport {
    /// True when Moodle is (now) as the log says and every event could be compared.
    pub fn is_clean(&self) -> bool {
        self.remaining.is_empty() && self.errors == 0
    }

    /// Differences seen, per kind (every kind present, 0 included).
    pub fn drift_by_kind(&self) -> BTreeMap<DriftKind, usize> {
        count_by_kind(&self.drift)
    }

    /// Differences left, per kind (every kind present, 0 included).
    pub fn remaining_by_kind(&self) -> BTreeMap<DriftKind, usize> {
        count_by_kind(&self.remaining)
    }

    /// The report for a person: one table of differences, then what was done.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        if self.drift.is_empty() {
            out.push_str(&format!(
                "no drift: Moodle is as the log says ({} event(s) checked)\n",
                self.checked
            ));
        } else {
            out.push_str(&table(&self.drift));
            out.push_str(&format!(
                "{} difference(s) in {} event(s) ({} checked)\n",
                self.drift.len(),
                self.events.iter().filter(|e| !e.drift.is_empty()).count(),
                self.checked
            ));
        }
        match self.mode {
            ReconcileMode::DryRun if !self.drift.is_empty() => out
                .push_str("dry run: nothing changed; run again with --apply to converge Moodle\n"),
            ReconcileMode::Apply if !self.drift.is_empty() => {
                let corrections: usize = self.events.iter().map(|e| e.corrections).sum();
                out.push_str(&format!(
                    "applied: {corrections} correction(s) recorded, the saga converged what it could\n"
                ));
                if self.remaining.is_empty() {
                    out.push_str("after converging: no drift left\n");
                } else {
                    out.push_str("still different after converging:\n");
                    out.push_str(&table(&self.remaining));
                }
            }
            _ => {}
        }
        for e in &self.events {
            if let Some(note) = &e.note {
                out.push_str(&format!("{}: {note}\n", e.event_id));
            }
        }
        out
    }
}

fn count_by_kind(rows: &[DriftRow]) -> BTreeMap<DriftKind, usize> {
    let mut m: BTreeMap<DriftKind, usize> = DriftKind::ALL.iter().map(|k| (*k, 0)).collect();
    for r in rows {
        *m.entry(r.note.kind).or_insert(0) += 1;
    }
    m
}

fn table(rows: &[DriftRow]) -> String {
    let headers = ["EVENT", "WHAT", "EXPECTED", "ACTUAL"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.event_id.clone(),
                r.note.what.clone(),
                r.note.expected.clone(),
                r.note.actual.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for c in &cells {
        for (w, v) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |vals: [&str; 4]| {
        let mut s = String::new();
        for (i, (v, w)) in vals.iter().zip(widths.iter()).enumerate() {
            if i == 3 {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = *w));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers);
    for c in &cells {
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
    }
    out
}

/// Publishes `openvle_moodle_drift{kind}` (every kind, so a fixed drift drops to 0).
pub(crate) fn publish_drift(by_kind: &BTreeMap<DriftKind, usize>) {
    for (kind, n) in by_kind {
        metrics::gauge!("openvle_moodle_drift", "kind" => kind.as_str()).set(*n as f64);
    }
}

/// Reads what Moodle holds for one event.
async fn observe(client: &MoodleClient, what: &Observe) -> Result<Observed, MoodleError> {
    let mut observed = Observed::default();
    let course = |c: moodle::Course| ObservedCourse {
        id: c.id,
        shortname: c.shortname,
        category_id: c.categoryid,
        visible: c.visible,
    };
    if let Some(id) = what.course_id {
        observed.recorded_course = client
            .get_courses_by_field(CourseField::Id, &id.to_string())
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .map(course);
    }
    if observed.recorded_course.is_none() {
        observed.course_by_shortname = crate::exec::find_course(client, &what.shortname)
            .await?
            .map(course);
    }
    if let Some(c) = &observed.recorded_course {
        let all = client.get_enrolled_users(c.id, EnrolledFilter::All).await?;
        let active: BTreeSet<i64> = client
            .get_enrolled_users(c.id, EnrolledFilter::OnlyActive)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        observed.enrolments = all
            .into_iter()
            .map(|u| ObservedEnrolment {
                user_id: u.id,
                suspended: !active.contains(&u.id),
                username: u.username,
                email: u.email,
                roles: u.roles.iter().map(|r| r.roleid).collect(),
            })
            .collect();
    }
    if !what.user_ids.is_empty() {
        let ids: Vec<String> = what.user_ids.iter().map(|i| i.to_string()).collect();
        let found: BTreeSet<i64> = client
            .get_users_by_field(UserField::Id, &ids)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        observed.missing_users = what
            .user_ids
            .iter()
            .copied()
            .filter(|id| !found.contains(id))
            .collect();
    }
    Ok(observed)
}

/// What one comparison saw (with the record's version it was made against).
struct Compared {
    recorded: MoodleSync,
    version: u64,
    rows: Vec<DriftRow>,
    corrections: Vec<MoodleSyncEvent>,
    /// The domain event the event's desired state stands on (causation of the record).
    cause: Uuid,
}

impl Worker {
    /// One reconcile pass over `event` (or every OpenVLE event with a Moodle side).
    ///
    /// Errors only for the store; Moodle failures are reported per event (`errors`).
    pub async fn reconcile(
        &self,
        event: Option<&str>,
        mode: ReconcileMode,
    ) -> Result<ReconcileReport, SagaError> {
        if !self.settings().enabled {
            return Err(SagaError::Disabled);
        }
        let Some(client) = self.moodle() else {
            return Err(SagaError::Disabled);
        };
        db::ensure_schema(self.store()).await?;
        let ids: Vec<String> = match event {
            Some(id) => vec![id.to_string()],
            None => db::vle_events(self.store(), None)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        };
        let mut report = ReconcileReport {
            mode,
            checked: 0,
            drift: Vec::new(),
            remaining: Vec::new(),
            events: Vec::new(),
            errors: 0,
        };
        for id in &ids {
            let compared = match self.compare(client, id).await {
                Ok(None) => continue,
                Ok(Some(c)) => c,
                Err(Failed::Store(e)) => return Err(e),
                Err(Failed::Moodle(e)) => {
                    report.checked += 1;
                    report.errors += 1;
                    report.events.push(EventReconcile {
                        event_id: id.clone(),
                        drift: Vec::new(),
                        corrections: 0,
                        remaining: Vec::new(),
                        saga_state: None,
                        note: Some(format!("could not read Moodle: {e}")),
                    });
                    continue;
                }
            };
            report.checked += 1;
            let outcome = match mode {
                ReconcileMode::DryRun => (!compared.rows.is_empty()).then(|| EventReconcile {
                    event_id: id.clone(),
                    remaining: compared.rows.clone(),
                    drift: compared.rows,
                    corrections: 0,
                    saga_state: None,
                    note: None,
                }),
                ReconcileMode::Report => {
                    let notes = notes(&compared.rows);
                    if notes != compared.recorded.drift {
                        self.record_observation(id, &compared, notes, false, Vec::new())
                            .await?;
                    }
                    (!compared.rows.is_empty()).then(|| EventReconcile {
                        event_id: id.clone(),
                        remaining: compared.rows.clone(),
                        drift: compared.rows,
                        corrections: 0,
                        saga_state: None,
                        note: None,
                    })
                }
                ReconcileMode::Apply => self.apply(client, id, compared).await?,
            };
            if let Some(o) = outcome {
                report.drift.extend(o.drift.iter().cloned());
                report.remaining.extend(o.remaining.iter().cloned());
                report.events.push(o);
            }
        }
        publish_drift(&report.remaining_by_kind());
        Ok(report)
    }

    /// Observes and compares one event; None when it has no Moodle side.
    async fn compare(&self, client: &MoodleClient, id: &str) -> Result<Option<Compared>, Failed> {
        let store = self.store();
        let rows = store
            .read_stream(<VleEvent as Aggregate>::TYPE, id)
            .await
            .map_err(|e| Failed::Store(e.into()))?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let e = row
                .decode::<VleEvent>()
                .map_err(|e| Failed::Store(e.into()))?;
            events.push((row.sequence.max(0) as u64, e));
        }
        let desired = Desired::fold(id, events);
        let (recorded, version) = store
            .load::<MoodleSync>(id)
            .await
            .map_err(|e| Failed::Store(e.into()))?
            .unwrap_or_default();
        let Some(what) = to_observe(&desired, &recorded, self.settings()) else {
            return Ok(None);
        };
        let observed = observe(client, &what).await.map_err(Failed::Moodle)?;
        let r = reconcile(&desired, &recorded, &observed, self.settings());
        Ok(Some(Compared {
            recorded,
            version,
            rows: r.rows,
            corrections: r.corrections,
            cause: desired.status_cause().event_id,
        }))
    }

    /// Records `DriftObserved` (and the corrections after it) in one append, unless the saga's
    /// record moved since the comparison. Returns the position appended, or None when fenced.
    async fn record_observation(
        &self,
        id: &str,
        compared: &Compared,
        drift: Vec<DriftNote>,
        applied: bool,
        corrections: Vec<MoodleSyncEvent>,
    ) -> Result<Option<i64>, SagaError> {
        let store = self.store();
        let current = store
            .last_sequence(<MoodleSync as Aggregate>::TYPE, id)
            .await?;
        if current != compared.version {
            return Ok(None);
        }
        let by = format!("reconcile:{}", self.config().worker_id);
        let mut facts = vec![MoodleSyncEvent::DriftObserved {
            drift,
            applied,
            by: by.clone(),
        }];
        facts.extend(corrections);
        let causation = (!compared.cause.is_nil()).then_some(compared.cause);
        let meta = CommandMeta::new(by).with_correlation(Uuid::new_v4(), causation);
        match store
            .execute::<MoodleSync>(id, MoodleSyncCommand::Record(facts), &meta)
            .await
        {
            Ok(appended) => Ok(Some(match appended.last_position() {
                Some(p) => p,
                None => store.head().await?,
            })),
            Err(CommandError::Store(e)) => Err(e.into()),
            Err(CommandError::Conflict) => Ok(None),
            Err(CommandError::Rejected(e)) => Err(SagaError::Record(e.to_string())),
        }
    }

    /// Records the drift and its corrections, lets the saga converge, observes again.
    async fn apply(
        &self,
        client: &MoodleClient,
        id: &str,
        compared: Compared,
    ) -> Result<Option<EventReconcile>, SagaError> {
        if compared.rows.is_empty() {
            if !compared.recorded.drift.is_empty() {
                self.record_observation(id, &compared, Vec::new(), true, Vec::new())
                    .await?;
            }
            return Ok(None);
        }
        let mut outcome = EventReconcile {
            event_id: id.to_string(),
            drift: compared.rows.clone(),
            corrections: compared.corrections.len(),
            remaining: compared.rows.clone(),
            saga_state: None,
            note: None,
        };
        let notes = notes(&compared.rows);
        let corrections = compared.corrections.clone();
        let Some(position) = self
            .record_observation(id, &compared, notes, true, corrections)
            .await?
        else {
            outcome.corrections = 0;
            outcome.note =
                Some("the saga recorded something meanwhile; nothing applied: run again".into());
            return Ok(Some(outcome));
        };
        db::touch(self.store(), id, position).await?;
        let state = self.process_event(id).await?;
        // Look again: what is left (normally nothing).
        match self.compare(client, id).await {
            Ok(Some(after)) => {
                let left = notes_of(&after.rows);
                if left != after.recorded.drift {
                    self.record_observation(id, &after, left, false, Vec::new())
                        .await?;
                }
                outcome.remaining = after.rows;
            }
            Ok(None) => outcome.remaining.clear(),
            Err(Failed::Store(e)) => return Err(e),
            Err(Failed::Moodle(e)) => {
                outcome.note = Some(format!("could not read Moodle after converging: {e}"))
            }
        }
        if let Some(db::WorkState {
            state,
            reason,
            parked,
            done,
        }) = state
        {
            if !outcome.remaining.is_empty() && outcome.note.is_none() {
                outcome.note = Some(match (parked, done, &reason) {
                    (true, _, Some(r)) => format!("the saga is parked ({r}); run `retry`"),
                    (true, _, None) => "the saga is parked; run `retry`".to_string(),
                    (false, false, Some(r)) => {
                        format!("the saga will retry ({r}); a running worker finishes it")
                    }
                    _ => format!("the saga's state is {state}"),
                });
            }
            outcome.saga_state = Some(state);
        }
        Ok(Some(outcome))
    }

    /// The scheduled pass: logs, publishes the gauge, never fails the worker.
    pub(crate) async fn scheduled_reconcile(self, apply: bool) {
        let mode = if apply {
            ReconcileMode::Apply
        } else {
            ReconcileMode::Report
        };
        match self.reconcile(None, mode).await {
            Ok(report) => {
                if report.drift.is_empty() {
                    tracing::debug!(checked = report.checked, "scheduled reconcile: no drift");
                } else {
                    tracing::warn!(
                        checked = report.checked,
                        drift = report.drift.len(),
                        remaining = report.remaining.len(),
                        applied = apply,
                        "scheduled reconcile: Moodle differs from the log"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduled reconcile failed (will run again)"),
        }
    }
}

enum Failed {
    Store(SagaError),
    Moodle(MoodleError),
}

fn notes(rows: &[DriftRow]) -> Vec<DriftNote> {
    notes_of(rows)
}

fn notes_of(rows: &[DriftRow]) -> Vec<DriftNote> {
    rows.iter().map(|r| r.note.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_parses_and_names_the_variable() {
        assert_eq!(ReconcileSchedule::parse(None, None), Ok(None));
        assert_eq!(ReconcileSchedule::parse(Some("0"), Some("true")), Ok(None));
        assert_eq!(
            ReconcileSchedule::parse(Some(" 300 "), None),
            Ok(Some(ReconcileSchedule {
                interval: Duration::from_secs(300),
                apply: false
            }))
        );
        assert_eq!(
            ReconcileSchedule::parse(Some("60"), Some("TRUE")).map(|s| s.map(|s| s.apply)),
            Ok(Some(true))
        );
        let e = ReconcileSchedule::parse(Some("5m"), None).unwrap_err();
        assert!(
            e.to_string().starts_with("MOODLE_RECONCILE_INTERVAL"),
            "{e}"
        );
        let e = ReconcileSchedule::parse(Some("60"), Some("maybe")).unwrap_err();
        assert!(e.to_string().starts_with("MOODLE_RECONCILE_APPLY"), "{e}");
    }
}
