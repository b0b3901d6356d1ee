//! The replay benchmark: seed a log of realistic events fast, then time a replay beside a raw
//! read-and-decode of the same rows, and report peak memory.

use std::time::Instant;

use cqrs_es::Aggregate;
use domain::environment::Environment;
use domain::event::{EventEvent, VleEvent};
use domain::moodle_sync::{LinkKind, MoodleSync, MoodleSyncEvent};
use domain::participant::{Participant, Role};
use projections::saga::SagaSettings;
use serde::Serialize;
use sqlx::QueryBuilder;
use store::{DbPool, Store, StoredEvent};
use uuid::Uuid;

use crate::error::ViewsError;
use crate::replay::{replay, ReplayOptions};

/// The figures of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayFigures {
    /// Events in the log when measured.
    pub events: u64,
    /// Seconds spent seeding (0 when the log already held enough).
    pub seed_secs: f64,
    /// Seconds of the replay (shadow build, swap, catch-up).
    pub replay_secs: f64,
    pub events_per_sec: f64,
    /// Seconds to read and decode the same rows without applying them.
    pub raw_read_secs: f64,
    pub raw_read_per_sec: f64,
    /// events_per_sec / raw_read_per_sec.
    pub ratio: f64,
    /// Peak resident memory of the process during the replay (VmHWM, reset before the replay
    /// when the kernel allows; 0 where /proc is missing).
    pub peak_rss_bytes: u64,
    /// Peak resident memory during the raw read, for comparison.
    pub raw_read_peak_rss_bytes: u64,
}

/// Events of one scripted OpenVLE event (see [`script`]).
pub const EVENTS_PER_SCRIPT: usize = 18;
/// OpenVLE events whose scripts are interleaved at a time, as concurrent work would be.
const INTERLEAVE: usize = 32;

fn person(id: &str, role: Role) -> Participant {
    Participant {
        id: id.into(),
        email: format!("{id}@bench.example.org"),
        username: None,
        first_name: "Bench".into(),
        last_name: id.into(),
        role,
    }
}

/// One row to insert: (aggregate type, event type, payload).
type Scripted = (&'static str, String, serde_json::Value);

fn ev(e: EventEvent) -> Result<Scripted, ViewsError> {
    use cqrs_es::DomainEvent;
    Ok((VleEvent::TYPE, e.event_type(), serde_json::to_value(&e)?))
}

fn sy(e: MoodleSyncEvent) -> Result<Scripted, ViewsError> {
    use cqrs_es::DomainEvent;
    Ok((MoodleSync::TYPE, e.event_type(), serde_json::to_value(&e)?))
}

/// The life of one OpenVLE event as the engine records it: deployed with three participants,
/// course duplicated, users linked and enrolled, a participant added (after a transient
/// failure), one removed, then ended (students unenrolled, course hidden). 18 events.
fn script(id: &str, k: u64) -> Result<Vec<Scripted>, ViewsError> {
    let cause = Uuid::nil();
    let course = 1000 + k as i64;
    let user = |n: i64| 10_000 + k as i64 * 10 + n;
    let mut out = vec![ev(EventEvent::Deployed {
        id: id.into(),
        environment_id: "bench-env".into(),
        name: format!("Bench event {k}"),
        template_course_id: Some(2),
        participants: vec![
            person("p1", Role::Instructor),
            person("p2", Role::Student),
            person("p3", Role::Student),
        ],
    })?];
    out.push(sy(MoodleSyncEvent::CourseDuplicated {
        course_id: course,
        shortname: format!("ovle-{id}"),
        template_course_id: 2,
        category_id: 1,
        adopted: false,
        caused_by: cause,
    })?);
    for (n, p) in ["p1", "p2", "p3"].iter().enumerate() {
        out.push(sy(MoodleSyncEvent::UserLinked {
            participant_id: (*p).into(),
            moodle_user_id: user(n as i64),
            username: format!("{p}-{k}"),
            how: LinkKind::Created,
            caused_by: cause,
        })?);
    }
    for (n, (p, role)) in [("p1", 3), ("p2", 5), ("p3", 5)].iter().enumerate() {
        out.push(sy(MoodleSyncEvent::Enrolled {
            participant_id: (*p).into(),
            moodle_user_id: user(n as i64),
            role_id: *role,
            caused_by: cause,
        })?);
    }
    out.push(ev(EventEvent::ParticipantAdded {
        participant: person("p4", Role::Student),
    })?);
    out.push(sy(MoodleSyncEvent::StepFailed {
        step: "enrol".into(),
        code: "ex_unabletolock".into(),
        message: "Unable to obtain lock".into(),
        attempt: 1,
        transient: true,
        participant_id: Some("p4".into()),
        caused_by: cause,
    })?);
    out.push(sy(MoodleSyncEvent::UserLinked {
        participant_id: "p4".into(),
        moodle_user_id: user(3),
        username: format!("p4-{k}"),
        how: LinkKind::Matched,
        caused_by: cause,
    })?);
    out.push(sy(MoodleSyncEvent::Enrolled {
        participant_id: "p4".into(),
        moodle_user_id: user(3),
        role_id: 5,
        caused_by: cause,
    })?);
    out.push(ev(EventEvent::ParticipantRemoved {
        participant: person("p3", Role::Student),
    })?);
    out.push(sy(MoodleSyncEvent::Unenrolled {
        participant_id: "p3".into(),
        moodle_user_id: user(2),
        caused_by: cause,
    })?);
    out.push(ev(EventEvent::Ended)?);
    for (n, p) in [(1, "p2"), (3, "p4")] {
        out.push(sy(MoodleSyncEvent::Unenrolled {
            participant_id: p.into(),
            moodle_user_id: user(n),
            caused_by: cause,
        })?);
    }
    out.push(sy(MoodleSyncEvent::CourseHidden {
        course_id: course,
        caused_by: cause,
    })?);
    debug_assert_eq!(out.len(), EVENTS_PER_SCRIPT);
    Ok(out)
}

/// A row of the `events` table as cqrs-es writes it.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
}

const INSERT_CHUNK: usize = 500;
const TX_ROWS: usize = 10_000;

async fn insert_rows(store: &Store, rows: &[Row]) -> Result<(), ViewsError> {
    macro_rules! body {
        ($tx:expr) => {{
            for chunk in rows.chunks(INSERT_CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.aggregate_type)
                        .push_bind(r.aggregate_id.as_str())
                        .push_bind(r.sequence)
                        .push_bind(r.event_type.as_str())
                        .push_bind("1")
                        .push_bind(&r.payload)
                        .push_bind(&r.metadata);
                });
                qb.build().execute(&mut *$tx).await?;
            }
        }};
    }
    match store.pool() {
        DbPool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            body!(tx);
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            body!(tx);
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Appends at least `n_events` events (whole scripts of [`EVENTS_PER_SCRIPT`], interleaved
/// across 32 OpenVLE events at a time) straight into `events` in the store's format, in
/// transactions of 10,000 rows. Returns the number appended. The audit chain is not sealed
/// (a benchmark database only).
pub async fn seed_events(store: &Store, n_events: u64) -> Result<u64, ViewsError> {
    let run = Uuid::new_v4().simple().to_string();
    let scripts = (n_events as usize).div_ceil(EVENTS_PER_SCRIPT) as u64;
    let command = Uuid::new_v4().to_string();
    let metadata = serde_json::json!({
        "command_id": command,
        "actor": "bench",
        "correlation_id": command,
    });
    let mut appended = 0u64;
    let mut batch: Vec<Row> = Vec::with_capacity(TX_ROWS + EVENTS_PER_SCRIPT * INTERLEAVE);
    let mut k = 0u64;
    while k < scripts {
        let group: Vec<u64> = (k..(k + INTERLEAVE as u64).min(scripts)).collect();
        let mut lives = Vec::with_capacity(group.len());
        for &j in &group {
            let id = format!("bench-{}-{j}", &run[..8]);
            lives.push((id.clone(), script(&id, j)?, 0i64, 0i64));
        }
        // Round-robin: one event of each OpenVLE event in turn.
        for step in 0..EVENTS_PER_SCRIPT {
            for (id, events, event_seq, sync_seq) in lives.iter_mut() {
                let (aggregate_type, event_type, payload) = events[step].clone();
                let sequence = if aggregate_type == VleEvent::TYPE {
                    *event_seq += 1;
                    *event_seq
                } else {
                    *sync_seq += 1;
                    *sync_seq
                };
                batch.push(Row {
                    aggregate_type,
                    aggregate_id: id.clone(),
                    sequence,
                    event_type,
                    payload,
                    metadata: metadata.clone(),
                });
            }
        }
        if batch.len() >= TX_ROWS {
            insert_rows(store, &batch).await?;
            appended += batch.len() as u64;
            batch.clear();
        }
        k += group.len() as u64;
    }
    if !batch.is_empty() {
        insert_rows(store, &batch).await?;
        appended += batch.len() as u64;
    }
    Ok(appended)
}

/// Peak resident set size of this process (VmHWM), 0 where /proc is not available.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resets the peak RSS counter (Linux: `5` into /proc/self/clear_refs); false when refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn decode_any(e: &StoredEvent) -> Result<(), ViewsError> {
    if e.aggregate_type == VleEvent::TYPE {
        e.decode::<VleEvent>()?;
    } else if e.aggregate_type == MoodleSync::TYPE {
        e.decode::<MoodleSync>()?;
    } else if e.aggregate_type == Environment::TYPE {
        e.decode::<Environment>()?;
    }
    Ok(())
}

/// Seeds the log up to `n_events` (when it holds fewer), then measures a raw read-and-decode
/// of the whole log and a full replay (with the integration's view settings on).
pub async fn bench_replay(store: &Store, n_events: u64) -> Result<ReplayFigures, ViewsError> {
    crate::db::check_schema(store).await?;
    let head = store.head().await?.max(0) as u64;
    let mut seed_secs = 0.0;
    if head < n_events {
        let t = Instant::now();
        seed_events(store, n_events - head).await?;
        seed_secs = t.elapsed().as_secs_f64();
    }
    let options = ReplayOptions::default();

    reset_peak_rss();
    let t = Instant::now();
    let mut pager = store.pager(0, options.page_size);
    let mut raw = 0u64;
    loop {
        let page = pager.next_page().await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            decode_any(e)?;
        }
        raw += page.len() as u64;
    }
    let raw_read_secs = t.elapsed().as_secs_f64();
    let raw_read_peak_rss_bytes = peak_rss_bytes();

    reset_peak_rss();
    let t = Instant::now();
    let report = replay(store, &SagaSettings::enabled(1), &options, |_| {}).await?;
    let replay_secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_bytes();
    let replayed = report.events + report.caught_up;

    let per_sec = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let events_per_sec = per_sec(replayed, replay_secs);
    let raw_read_per_sec = per_sec(raw, raw_read_secs);
    Ok(ReplayFigures {
        events: raw,
        seed_secs,
        replay_secs,
        events_per_sec,
        raw_read_secs,
        raw_read_per_sec,
        ratio: if raw_read_per_sec > 0.0 {
            events_per_sec / raw_read_per_sec
        } else {
            0.0
        },
        peak_rss_bytes: peak,
        raw_read_peak_rss_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_is_a_consistent_life() {
        let s = script("e", 1).unwrap();
        assert_eq!(s.len(), EVENTS_PER_SCRIPT);
        assert_eq!(s[0].1, "Deployed");
        let mut fold = projections::view::EventFold::new();
        for (t, _, payload) in s {
            if t == VleEvent::TYPE {
                fold.apply_event(serde_json::from_value(payload).unwrap());
            } else {
                fold.apply_sync(serde_json::from_value(payload).unwrap(), chrono::Utc::now());
            }
        }
        let v = fold.view(&SagaSettings::enabled(1)).unwrap();
        assert_eq!(v.moodle.state, projections::view::MoodleState::InSync);
    }

    #[test]
    fn peak_rss_is_read() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(peak_rss_bytes() > 0);
        }
    }
}
