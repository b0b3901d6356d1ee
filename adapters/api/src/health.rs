//! Moodle's health as the engine sees it: the quick preflight (`moodle check`) run at start-up
//! and then every few minutes, kept for `GET /api/v1/status` and `/metrics`, and logged (at
//! start-up, and whenever its verdict changes).
//!
//! `/readyz` does not wait on it: readiness is about this process (its store answers), so a
//! Moodle outage never takes the API away from OpenVLE core, which must still record events
//! while Moodle is down (the saga catches up later). Moodle's health is read here instead.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::AppState;

/// How often the parked counts of `/metrics` are refreshed.
const PARKED_EVERY: Duration = Duration::from_secs(15);

/// One preflight and when it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub checked_at: DateTime<Utc>,
    #[serde(flatten)]
    pub report: moodle::CheckReport,
}

/// The last preflight, shared by the checker and the handlers.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<RwLock<Option<Snapshot>>>);

impl Health {
    /// The last preflight (None: none ran yet, or Moodle is off).
    pub fn last(&self) -> Option<Snapshot> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, snapshot: Snapshot) {
        match self.0.write() {
            Ok(mut g) => *g = Some(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Some(snapshot),
        }
    }
}

/// Runs the preflight now and every `every` (never again when zero), and refreshes the parked
/// counts of `/metrics`, until `shutdown`.
pub async fn run<S>(state: AppState, every: Duration, shutdown: S)
where
    S: std::future::Future<Output = ()> + Send,
{
    tokio::pin!(shutdown);
    let mut last_verdict: Option<(bool, Vec<String>)> = None;
    let mut next_check = tokio::time::Instant::now();
    let tick = if every.is_zero() {
        PARKED_EVERY
    } else {
        PARKED_EVERY.min(every)
    };
    loop {
        if tokio::time::Instant::now() >= next_check {
            if let Some(verdict) = check_once(&state, last_verdict.as_ref()).await {
                last_verdict = Some(verdict);
            }
            next_check = if every.is_zero() {
                tokio::time::Instant::now() + Duration::from_secs(u64::from(u32::MAX))
            } else {
                tokio::time::Instant::now() + every
            };
        }
        refresh_parked(&state).await;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// One preflight: kept, put in the gauges, and logged when its verdict differs from `before`.
async fn check_once(
    state: &AppState,
    before: Option<&(bool, Vec<String>)>,
) -> Option<(bool, Vec<String>)> {
    let client = state.moodle()?;
    let targets = match crate::environment_targets(state.store()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "Moodle preflight: the environments could not be read; checking the settings' targets only");
            Vec::new()
        }
    };
    let report = moodle::check_with(client, &state.config().moodle, &targets).await;
    let verdict = (report.ok, report.problems.clone());
    gauges(&report);
    if before != Some(&verdict) {
        log(&report);
    }
    state.health().set(Snapshot {
        checked_at: Utc::now(),
        report,
    });
    Some(verdict)
}

fn log(r: &moodle::CheckReport) {
    if r.ok {
        tracing::info!(
            site = r.sitename.as_deref().unwrap_or(""),
            release = r.release.as_deref().unwrap_or(""),
            functions = r.functions_found.len(),
            "Moodle preflight ok"
        );
    } else {
        for p in &r.problems {
            tracing::warn!("Moodle preflight: {p}");
        }
        tracing::warn!(
            problems = r.problems.len(),
            "Moodle preflight found problems: events will park until they are fixed (GET /api/v1/moodle/check)"
        );
    }
    for n in &r.notes {
        tracing::info!("Moodle preflight note: {n}");
    }
}

fn gauges(r: &moodle::CheckReport) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metrics::gauge!("openvle_moodle_up").set(flag(r.reachable && r.token_valid));
    metrics::gauge!("openvle_moodle_check_ok").set(flag(r.ok));
    metrics::gauge!("openvle_moodle_check_problems").set(r.problems.len() as f64);
    metrics::gauge!("openvle_moodle_check_timestamp_seconds").set(Utc::now().timestamp() as f64);
}

/// `openvle_moodle_parked{code}`: parked events by code (a code no longer seen goes to 0).
async fn refresh_parked(state: &AppState) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(saga) = state.saga() else { return };
    let status = match saga.status().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "parked counts not refreshed");
            return;
        }
    };
    let counts: Vec<(String, f64)> = status["parked_by_code"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    let mut seen = match SEEN.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    for code in seen.iter() {
        if !counts.iter().any(|(c, _)| c == code) {
            metrics::gauge!("openvle_moodle_parked", "code" => code.clone()).set(0.0);
        }
    }
    for (code, n) in &counts {
        metrics::gauge!("openvle_moodle_parked", "code" => code.clone()).set(*n);
        if !seen.contains(code) {
            seen.push(code.clone());
        }
    }
}
