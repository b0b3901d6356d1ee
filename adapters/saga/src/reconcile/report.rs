//! What a reconcile pass saw and did, for a person (a table) and for the metrics
//! (`openvle_moodle_drift{kind}`).

use std::collections::BTreeMap;

use serde::Serialize;

use domain::moodle_sync::DriftKind;
use projections::saga::DriftRow;

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
