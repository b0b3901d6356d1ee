//! Behaviour of the store, run on SQLite always and on PostgreSQL when OPENVLE_TEST_PG is set.

use crate::common;

use std::collections::HashSet;

use common::*;
use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, EventEvent, VleEvent};
use domain::moodle_sync::MoodleSync;
use domain::DomainError;
use store::{CommandError, IdempotencyState, LogQuery, Store};

store::both_backends!(store:
    append_load_and_read_in_commit_order,
    metadata_and_positions_are_returned,
    command_without_events_appends_nothing,
    rejected_command_appends_nothing,
    twenty_concurrent_adds_lose_nothing,
    conflicts_are_retried_not_lost,
    audit_detects_edited_payload,
    audit_detects_deleted_event,
    audit_detects_swapped_positions,
    audit_detects_inserted_event,
    idempotency_states,
    read_page_filters,
    export_json_lines,
    migrate_is_idempotent,
    pager_walks_everything,
    audit_pages_through_a_long_log,
    numbered_placeholders_bind_out_of_order_and_repeated,
    dialect_locks_and_reads_json,
);

async fn append_load_and_read_in_commit_order(s: &Store) {
    assert_eq!(s.head().await.unwrap(), 0);
    assert!(s.load::<VleEvent>("ev1").await.unwrap().is_none());

    let a = put_env(s, "env1", "Env one").await; // EnvironmentCreated, TemplateLinked
    assert_eq!(a.positions, vec![1, 2]);
    assert_eq!(a.last_sequence, 2);
    let b = deploy(s, "env1", "ev1", 2).await;
    assert_eq!(b.positions, vec![3]);
    let c = record_course(s, "ev1", 77).await;
    assert_eq!(c.positions, vec![4]);
    let d = put_env(s, "env2", "Env two").await;
    assert_eq!(d.positions, vec![5, 6]);
    let e = add(s, "ev1", 9).await;
    assert_eq!(e.positions, vec![7]);
    assert_eq!(e.last_sequence, 2);

    // Global order is commit order, across aggregates (cqrs-es's own reader would not give this).
    let all = s.read_all(0, 100).await.unwrap();
    let order: Vec<(String, String, i64)> = all
        .iter()
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone(), e.sequence))
        .collect();
    let expected: Vec<(String, String, i64)> = [
        ("environment", "env1", 1),
        ("environment", "env1", 2),
        ("event", "ev1", 1),
        ("moodle_sync", "ev1", 1),
        ("environment", "env2", 1),
        ("environment", "env2", 2),
        ("event", "ev1", 2),
    ]
    .iter()
    .map(|(t, i, q)| (t.to_string(), i.to_string(), *q))
    .collect();
    assert_eq!(order, expected);
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(s.head().await.unwrap(), 7);
    assert_eq!(s.read_all(5, 1).await.unwrap()[0].position, 6);
    assert!(s.read_all(7, 10).await.unwrap().is_empty());

    // Deterministic ids and timestamps.
    for e in &all {
        assert_eq!(
            e.event_id,
            domain::event_id_of(&e.aggregate_type, &e.aggregate_id, e.sequence as u64)
        );
    }
    assert!(all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));

    // load folds the stream through the aggregate.
    let (ev, seq) = s.load::<VleEvent>("ev1").await.unwrap().unwrap();
    assert_eq!(seq, 2);
    assert_eq!(ev.participants.len(), 3);
    let (sync, seq) = s.load::<MoodleSync>("ev1").await.unwrap().unwrap();
    assert_eq!(seq, 1);
    assert_eq!(sync.course_id, Some(77));

    // One stream; one OpenVLE event's both streams interleaved by position.
    let stream = s.read_stream("event", "ev1").await.unwrap();
    assert_eq!(
        stream
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["Deployed", "ParticipantAdded"]
    );
    let history = s.read_event_history("ev1").await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.position).collect::<Vec<_>>(),
        [3, 4, 7]
    );
    assert_eq!(history[1].aggregate_type, "moodle_sync");
    match history[2].decode::<VleEvent>().unwrap() {
        EventEvent::ParticipantAdded { participant } => assert_eq!(participant.id, "p9"),
        other => panic!("unexpected {other:?}"),
    }
    // Decoding into the wrong aggregate names the position.
    match history[1].decode::<VleEvent>() {
        Err(store::StoreError::Decode { position, .. }) => assert_eq!(position, 4),
        other => panic!("expected a decode error, got {other:?}"),
    }

    // Every append was sealed.
    let report = s.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.checked, report.sealed_head, report.head), (7, 7, 7));
}

async fn metadata_and_positions_are_returned(s: &Store) {
    put_env(s, "env1", "Env").await;
    let meta = store::CommandMeta::new("alice")
        .with_idempotency_key("k-1")
        .with_correlation(uuid::Uuid::new_v4(), Some(uuid::Uuid::new_v4()));
    let environment = s.load::<Environment>("env1").await.unwrap().map(|x| x.0);
    let appended = s
        .execute::<VleEvent>(
            "ev1",
            EventCommand::Deploy {
                context: Default::default(),
                schedule: Default::default(),
                id: "ev1".into(),
                environment_id: "env1".into(),
                name: "n".into(),
                participants: vec![participant(1)],
                environment,
            },
            &meta,
        )
        .await
        .unwrap();
    let row = &s.read_all(appended.positions[0] - 1, 1).await.unwrap()[0];
    assert_eq!(row.meta("actor"), Some("alice"));
    assert_eq!(
        row.meta("command_id"),
        Some(meta.command_id.to_string().as_str())
    );
    assert_eq!(row.meta("idempotency_key"), Some("k-1"));
    assert_eq!(
        row.meta("correlation_id"),
        Some(meta.correlation_id.to_string().as_str())
    );
    assert_eq!(
        row.meta("causation_id"),
        Some(meta.causation_id.unwrap().to_string().as_str())
    );
}

async fn command_without_events_appends_nothing(s: &Store) {
    put_env(s, "env1", "Env").await;
    // The same Put again changes nothing: no event.
    let again = put_env(s, "env1", "Env").await;
    assert!(again.positions.is_empty());
    assert_eq!(again.last_sequence, 2);
    assert_eq!(s.head().await.unwrap(), 2);
}

async fn rejected_command_appends_nothing(s: &Store) {
    let err = s
        .execute::<VleEvent>("nope", EventCommand::End, &meta())
        .await
        .unwrap_err();
    match err {
        CommandError::Rejected(DomainError::EventNotFound(_)) => {}
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(s.head().await.unwrap(), 0);
}

async fn twenty_concurrent_adds_lose_nothing(s: &Store) {
    put_env(s, "env1", "Env").await;
    deploy(s, "env1", "ev1", 0).await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { add(&s, "ev1", n).await }));
    }
    let mut positions = HashSet::new();
    for t in tasks {
        let appended = t.await.unwrap();
        assert_eq!(appended.positions.len(), 1);
        assert!(positions.insert(appended.positions[0]));
    }
    let (ev, seq) = s.load::<VleEvent>("ev1").await.unwrap().unwrap();
    assert_eq!(ev.participants.len(), 20);
    assert_eq!(seq, 21);
    // Every event is in the log once and sealed. SQLite positions are dense; on PostgreSQL a
    // conflicting insert consumed an identity value before failing, leaving holes.
    let all = s.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 23);
    let head = s.head().await.unwrap();
    if s.backend() == store::Backend::Sqlite {
        assert_eq!(head, 23);
    }
    let report = s.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.sealed_head, report.checked), (head, 23));
}

async fn conflicts_are_retried_not_lost(s: &Store) {
    // Two streams of concurrent writers on the same aggregate, each with distinct participants,
    // plus one that must be refused after the other got in first (same participant id).
    put_env(s, "env1", "Env").await;
    deploy(s, "env1", "ev1", 0).await;
    let a = {
        let s = s.clone();
        tokio::spawn(async move {
            s.execute::<VleEvent>(
                "ev1",
                EventCommand::AddParticipant {
                    participant: participant(1),
                },
                &meta(),
            )
            .await
        })
    };
    let b = {
        let s = s.clone();
        tokio::spawn(async move {
            s.execute::<VleEvent>(
                "ev1",
                EventCommand::AddParticipant {
                    participant: participant(1),
                },
                &meta(),
            )
            .await
        })
    };
    let results = [a.await.unwrap(), b.await.unwrap()];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(CommandError::Rejected(DomainError::ParticipantExists(_)))
            )
        })
        .count();
    assert_eq!((ok, refused), (1, 1), "{results:?}");
}

async fn audit_detects_edited_payload(s: &Store) {
    put_env(s, "env1", "Env").await;
    deploy(s, "env1", "ev1", 1).await;
    add(s, "ev1", 2).await;
    assert!(s.verify().await.unwrap().ok);
    let sql = match s.backend() {
        store::Backend::Sqlite => {
            "UPDATE events SET payload = replace(payload, 'p2@example.org', 'evil@example.org') \
             WHERE position = 4"
        }
        store::Backend::Postgres => {
            "UPDATE events SET payload = replace(payload::text, 'p2@example.org', \
             'evil@example.org')::json WHERE position = 4"
        }
    };
    raw(s, sql).await;
    let report = s.verify().await.unwrap();
    assert!(!report.ok);
    let brk = report.first_break.unwrap();
    assert_eq!(brk.position, 4, "{brk:?}");
    assert_eq!(brk.kind, store::BreakKind::Edited);
    assert_eq!(report.checked, 3);
}

async fn audit_detects_deleted_event(s: &Store) {
    put_env(s, "env1", "Env").await;
    deploy(s, "env1", "ev1", 1).await;
    add(s, "ev1", 2).await;
    raw(s, "DELETE FROM events WHERE position = 3").await;
    let brk = s.verify().await.unwrap().first_break.unwrap();
    assert_eq!(brk.position, 3, "{brk:?}");
    assert_eq!(brk.kind, store::BreakKind::Deleted);
}

async fn audit_detects_swapped_positions(s: &Store) {
    put_env(s, "env1", "Env").await; // 1, 2
    deploy(s, "env1", "ev1", 1).await; // 3
    add(s, "ev1", 2).await; // 4
    add(s, "ev1", 3).await; // 5
    if s.backend() == store::Backend::Postgres {
        // position is GENERATED ALWAYS: an attacker with DDL rights lifts that first.
        raw(
            s,
            "ALTER TABLE events ALTER COLUMN position SET GENERATED BY DEFAULT",
        )
        .await;
    }
    raw(
        s,
        "UPDATE events SET position = -1 WHERE position = 3; \
         UPDATE events SET position = 3 WHERE position = 5; \
         UPDATE events SET position = 5 WHERE position = -1;",
    )
    .await;
    let brk = s.verify().await.unwrap().first_break.unwrap();
    assert_eq!(brk.position, 3, "{brk:?}");
    assert_eq!(brk.kind, store::BreakKind::Reordered);
}

async fn audit_detects_inserted_event(s: &Store) {
    put_env(s, "env1", "Env").await; // 1, 2
    deploy(s, "env1", "ev1", 1).await; // 3
                                       // A hole at 4..=9 (as a rolled-back append leaves on PostgreSQL), then position 10, sealed.
    if s.backend() == store::Backend::Postgres {
        raw(
            s,
            "ALTER TABLE events ALTER COLUMN position SET GENERATED BY DEFAULT",
        )
        .await;
    }
    raw(
        s,
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, position) VALUES ('event', 'other', 1, 'Ended', '1', '\"Ended\"', \
         '{}', 10)",
    )
    .await;
    assert_eq!(s.seal().await.unwrap(), 10);
    let report = s.verify().await.unwrap();
    assert!(report.ok && report.checked == 4, "{report:?}");
    raw(
        s,
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, position) VALUES ('event', 'forged', 1, 'Ended', '1', '\"Ended\"', \
         '{}', 5)",
    )
    .await;
    let brk = s.verify().await.unwrap().first_break.unwrap();
    assert_eq!(brk.position, 5, "{brk:?}");
    assert_eq!(brk.kind, store::BreakKind::Unsealed);
}

async fn idempotency_states(s: &Store) {
    use IdempotencyState::*;
    assert_eq!(s.idempotency_begin("k1", "alice", "h1").await.unwrap(), New);
    assert_eq!(
        s.idempotency_begin("k1", "alice", "h1").await.unwrap(),
        InFlight
    );
    assert_eq!(
        s.idempotency_begin("k1", "alice", "h2").await.unwrap(),
        Mismatch
    );
    // Keys are per actor.
    assert_eq!(s.idempotency_begin("k1", "bob", "h2").await.unwrap(), New);
    s.idempotency_complete("k1", "alice", 202, r#"{"ok":true}"#)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("k1", "alice", "h1").await.unwrap(),
        Replay {
            status: 202,
            body: r#"{"ok":true}"#.into()
        }
    );
    assert_eq!(
        s.idempotency_begin("k1", "alice", "h2").await.unwrap(),
        Mismatch
    );
    // Abort releases an in-flight key; a completed key is never released.
    s.idempotency_abort("k1", "bob").await.unwrap();
    assert_eq!(s.idempotency_begin("k1", "bob", "h3").await.unwrap(), New);
    s.idempotency_abort("k1", "alice").await.unwrap();
    assert!(matches!(
        s.idempotency_begin("k1", "alice", "h1").await.unwrap(),
        Replay { status: 202, .. }
    ));
}

async fn read_page_filters(s: &Store) {
    put_env(s, "env1", "Env").await; // 1 EnvironmentCreated, 2 TemplateLinked
    let t_mid = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    deploy(s, "env1", "ev1", 1).await; // 3 Deployed
    record_course(s, "ev1", 5).await; // 4 CourseDuplicated
    deploy(s, "env1", "ev2", 1).await; // 5 Deployed
    add(s, "ev1", 7).await; // 6 ParticipantAdded

    let positions = |v: Vec<store::StoredEvent>| v.iter().map(|e| e.position).collect::<Vec<_>>();
    let q = |f: &dyn Fn(&mut LogQuery)| {
        let mut q = LogQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        positions(s.read_page(&q(&|_| {})).await.unwrap()),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        positions(
            s.read_page(&q(&|q| q.stream = Some("ev1".into())))
                .await
                .unwrap()
        ),
        [3, 4, 6]
    );
    assert_eq!(
        positions(
            s.read_page(&q(&|q| {
                q.stream = Some("ev1".into());
                q.aggregate_type = Some("event".into());
            }))
            .await
            .unwrap()
        ),
        [3, 6]
    );
    assert_eq!(
        positions(
            s.read_page(&q(&|q| q.event_type = Some("Deployed".into())))
                .await
                .unwrap()
        ),
        [3, 5]
    );
    assert_eq!(
        positions(
            s.read_page(&q(&|q| {
                q.after = 3;
                q.limit = 2;
            }))
            .await
            .unwrap()
        ),
        [4, 5]
    );
    assert_eq!(
        positions(s.read_page(&q(&|q| q.from = Some(t_mid))).await.unwrap()),
        [3, 4, 5, 6]
    );
    assert_eq!(
        positions(s.read_page(&q(&|q| q.to = Some(t_mid))).await.unwrap()),
        [1, 2]
    );
    assert!(s
        .read_page(&q(&|q| q.event_type = Some("Nope".into())))
        .await
        .unwrap()
        .is_empty());
}

async fn export_json_lines(s: &Store) {
    put_env(s, "env1", "Env").await; // 1, 2
    deploy(s, "env1", "ev1", 1).await; // 3
    record_course(s, "ev1", 5).await; // 4
    deploy(s, "env1", "ev2", 0).await; // 5

    let mut out: Vec<u8> = Vec::new();
    let summary = s.export(0, None, &mut out).await.unwrap();
    assert_eq!((summary.count, summary.last_position), (5, 5));
    let lines: Vec<store::StoredEvent> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, s.read_all(0, 100).await.unwrap());

    let mut out: Vec<u8> = Vec::new();
    let summary = s.export(0, Some("ev1"), &mut out).await.unwrap();
    assert_eq!((summary.count, summary.last_position), (2, 4));

    let mut out: Vec<u8> = Vec::new();
    let summary = s.export(4, None, &mut out).await.unwrap();
    assert_eq!((summary.count, summary.last_position), (1, 5));
    let summary = s.export(5, None, &mut Vec::new()).await.unwrap();
    assert_eq!((summary.count, summary.last_position), (0, 5));
}

async fn migrate_is_idempotent(s: &Store) {
    put_env(s, "env1", "Env").await;
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
    assert_eq!(s.head().await.unwrap(), 2);
}

async fn pager_walks_everything(s: &Store) {
    put_env(s, "env1", "Env").await;
    deploy(s, "env1", "ev1", 0).await;
    for n in 0..7 {
        add(s, "ev1", n).await;
    }
    let mut pager = s.pager(0, 3);
    let mut seen = Vec::new();
    loop {
        let page = pager.next_page().await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        seen.extend(page.into_iter().map(|e| e.position));
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert_eq!(pager.position(), 10);
}

/// A conflict that outlives the retries is reported as Conflict, and nothing is appended by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conflict_without_retries_surfaces() {
    let url = store::testing::fresh_sqlite_url();
    let s = Store::connect_with(
        &url,
        store::StoreOptions {
            conflict_retries: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    put_env(&s, "env1", "Env").await;
    deploy(&s, "env1", "ev1", 0).await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.execute::<VleEvent>(
                "ev1",
                EventCommand::AddParticipant {
                    participant: participant(n),
                },
                &meta(),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Conflict) => conflicts += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let (ev, _) = s.load::<VleEvent>("ev1").await.unwrap().unwrap();
    assert_eq!(ev.participants.len(), ok);
    assert_eq!(ok + conflicts, 20);
    assert!(s.verify().await.unwrap().ok);
}

#[tokio::test]
async fn unknown_scheme_names_the_variable() {
    let err = Store::connect("mysql://root:pw@localhost/db")
        .await
        .unwrap_err();
    assert!(matches!(err, store::StoreError::Config(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("DATABASE_URL") && msg.contains("sqlite://"),
        "{msg}"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let err = Store::connect_with(
        "postgres://postgres@127.0.0.1:1/none",
        store::StoreOptions {
            acquire_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[test]
fn execute_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = sqlite_store().await;
        let m = meta();
        let fut = s.execute::<VleEvent>("x", EventCommand::End, &m);
        assert_send(&fut);
        let _ = fut.await;
        let put = s.execute::<Environment>(
            "e",
            EnvironmentCommand::Put {
                course: Default::default(),
                id: "e".into(),
                name: "n".into(),
                moodle_template_course_id: None,
            },
            &m,
        );
        assert_send(&put);
        assert_eq!(put.await.unwrap().positions, vec![1]);
    });
}

/// The global readers walk indexes, so a replay of millions of events is a series of short
/// index range scans.
#[tokio::test]
async fn sqlite_readers_use_indexes() {
    let s = sqlite_store().await;
    let store::DbPool::Sqlite(pool) = s.pool() else {
        unreachable!()
    };
    let plan = |sql: &'static str| async move {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(pool)
                .await
                .unwrap();
        rows.into_iter()
            .map(|r| r.3)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let all = plan("SELECT * FROM events WHERE position > 5 ORDER BY position LIMIT 10").await;
    assert!(all.contains("events_position"), "{all}");
    assert!(!all.contains("TEMP B-TREE"), "{all}");
    let stream = plan(
        "SELECT * FROM events WHERE position > 5 AND aggregate_id = 'x' ORDER BY position LIMIT 10",
    )
    .await;
    assert!(stream.contains("events_aggregate_id_position"), "{stream}");
    assert!(!stream.contains("TEMP B-TREE"), "{stream}");
    let typed = plan(
        "SELECT * FROM events WHERE position > 5 AND event_type = 'x' ORDER BY position LIMIT 10",
    )
    .await;
    assert!(typed.contains("events_event_type_position"), "{typed}");
    let head = plan("SELECT COALESCE(MAX(position), 0) FROM events").await;
    assert!(head.contains("events_position"), "{head}");
}

/// Seal and verify page through the log (1000 rows a page): a long log crosses pages.
async fn audit_pages_through_a_long_log(s: &Store) {
    let bulk = match s.backend() {
        store::Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
             SELECT 'environment', 'bulk', i, 'EnvironmentRenamed', '1', \
             json_object('EnvironmentRenamed', json_object('name', 'n' || i)), '{}' FROM n"
        }
        store::Backend::Postgres => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
             SELECT 'environment', 'bulk', i, 'EnvironmentRenamed', '1', \
             json_build_object('EnvironmentRenamed', json_build_object('name', 'n' || i)), \
             '{}'::json FROM generate_series(1, 2500) AS i"
        }
    };
    raw(s, bulk).await;
    assert_eq!(s.head().await.unwrap(), 2500);
    assert_eq!(s.seal().await.unwrap(), 2500);
    assert_eq!(s.seal().await.unwrap(), 2500, "nothing new: idempotent");
    let report = s.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, 2500);
    let (_, seq) = s.load::<Environment>("bulk").await.unwrap().unwrap();
    assert_eq!(seq, 2500);
    raw(
        s,
        "UPDATE events SET metadata = '{\"actor\":\"mallory\"}' WHERE position = 2100",
    )
    .await;
    let report = s.verify().await.unwrap();
    let brk = report.first_break.unwrap();
    assert_eq!((brk.position, brk.kind), (2100, store::BreakKind::Edited));
    assert_eq!(report.checked, 2099);
}

/// The one convention: `$n` placeholders, read by number (not by order) on both backends.
async fn numbered_placeholders_bind_out_of_order_and_repeated(s: &Store) {
    let row: (i64, String, i64) = store::with_pool!(s.pool(), |p| {
        sqlx::query_as("SELECT $2 + $2, $1, CAST($3 AS BIGINT) * 0 + $2")
            .bind("first")
            .bind(20_i64)
            .bind(7_i64)
            .fetch_one(p)
            .await
            .expect("numbered placeholders")
    });
    assert_eq!(row, (40, "first".to_string(), 20));
}

/// The dialect's differences run: a serialised transaction with its lock, a locking SELECT,
/// `SKIP LOCKED`, and a JSON field read.
async fn dialect_locks_and_reads_json(s: &Store) {
    let a = put_env(s, "env-dialect", "Dialect").await;
    let dialect = s.backend();
    let command_id: String = store::with_pool!(s.pool(), |p| {
        let mut tx = p
            .begin_with(dialect.begin_serialised())
            .await
            .expect("begin serialised");
        if let Some(lock) = dialect.advisory_lock() {
            sqlx::query(lock)
                .bind(8_675_309_999_i64)
                .execute(&mut *tx)
                .await
                .expect("advisory lock");
        }
        let locked: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT position FROM events WHERE position = $1{}",
            dialect.for_update()
        ))
        .bind(a.positions[0])
        .fetch_all(&mut *tx)
        .await
        .expect("for update");
        assert_eq!(locked, vec![a.positions[0]]);
        let skipped: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT position FROM events WHERE position = $1{}",
            dialect.for_update_skip_locked()
        ))
        .bind(a.positions[0])
        .fetch_all(&mut *tx)
        .await
        .expect("skip locked");
        // Our own lock does not hide the row from us.
        assert_eq!(skipped, vec![a.positions[0]]);
        let id = sqlx::query_scalar(&format!(
            "SELECT {} FROM events WHERE position = $1",
            dialect.json_text("metadata", "command_id")
        ))
        .bind(a.positions[0])
        .fetch_one(&mut *tx)
        .await
        .expect("json text");
        tx.commit().await.expect("commit");
        id
    });
    let events = s.read_all(0, 10).await.expect("read");
    assert_eq!(
        events[0].metadata["command_id"].as_str(),
        Some(command_id.as_str())
    );
    assert!(!command_id.is_empty());
}
