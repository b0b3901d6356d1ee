//! A log of realistic OpenVLE events, written fast for the replay benchmark (`replay.rs`
//! times the replay beside a raw read-and-decode of the same rows).

use cqrs_es::Aggregate;
use domain::event::{EventEvent, VleEvent};
use domain::moodle_sync::{LinkKind, MoodleSync, MoodleSyncEvent};
use domain::participant::{Participant, Role};
use sqlx::QueryBuilder;
use store::{DbPool, Store};
use uuid::Uuid;

use views::ViewsError;

/// Events of one scripted OpenVLE event (see [`script`]).
pub const EVENTS_PER_SCRIPT: usize = 18;
/// OpenVLE events whose scripts are interleaved at a time, as concurrent work would be.
const INTERLEAVE: usize = 32;

fn person(id: &str, role: Role) -> Participant {
    Participant {
        idnumber: None,
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
        course: Default::default(),
        schedule: Default::default(),
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
            key: None,
            differs: None,
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
        key: None,
        differs: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::peak_rss_bytes;
    use projections::saga::SagaSettings;

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
