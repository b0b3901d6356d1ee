//! PostgreSQL: positions become visible in commit order (no reader skips a late committer), and a
//! rolled-back append leaves a gap that readers pass over. Runs when OPENVLE_TEST_PG is set.

use crate::common;

use std::time::Duration;

use common::*;
use sqlx::Connection;
use store::{DbPool, Store};

const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata) VALUES ($1, $2, 1, 'Ended', '1', '\"Ended\"'::json, '{}'::json) \
     RETURNING position";

fn pg_pool(s: &Store) -> sqlx::PgPool {
    match s.pool() {
        DbPool::Postgres(p) => p.clone(),
        DbPool::Sqlite(_) => panic!("postgres expected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reader_never_passes_an_open_append() {
    let Some((s, db)) = pg_store().await else {
        return;
    };
    put_env(&s, "env1", "Env").await; // positions 1, 2

    // An append held open on its own connection (same trigger path as postgres-es's insert).
    let mut held = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = held.begin().await.unwrap();
    let open_position: i64 = sqlx::query_scalar(INSERT)
        .bind("event")
        .bind("held")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(open_position, 3);

    // A later append through the store: it must wait on the append lock.
    let later = {
        let s = s.clone();
        tokio::spawn(async move { put_env(&s, "env2", "Env two").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !later.is_finished(),
        "the later append must wait for the open one"
    );

    // While the open append is uncommitted, readers stop below it.
    for _ in 0..5 {
        let all = s.read_all(0, 100).await.unwrap();
        assert!(
            all.iter().all(|e| e.position < open_position),
            "reader saw {:?} past the open position {open_position}",
            all.iter().map(|e| e.position).collect::<Vec<_>>()
        );
        assert_eq!(s.head().await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tx.commit().await.unwrap();
    let appended = tokio::time::timeout(Duration::from_secs(10), later)
        .await
        .expect("later append finishes once the open one commits")
        .unwrap();
    assert_eq!(appended.positions, vec![4, 5]);
    let positions: Vec<i64> = s
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    // The chain covers the row appended outside `execute` too (sealed by the later execute).
    let report = s.verify().await.unwrap();
    assert!(report.ok && report.sealed_head == 5, "{report:?}");
    held.close().await.unwrap();
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolled_back_append_leaves_a_gap_readers_pass_over() {
    let Some((s, _db)) = pg_store().await else {
        return;
    };
    put_env(&s, "env1", "Env").await; // 1, 2
    let pool = pg_pool(&s);

    let mut tx = pool.begin().await.unwrap();
    let doomed: i64 = sqlx::query_scalar(INSERT)
        .bind("event")
        .bind("doomed")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(doomed, 3);
    tx.rollback().await.unwrap();

    let after = put_env(&s, "env2", "Env two").await;
    assert_eq!(after.positions, vec![4, 5]);

    // A reader checkpointed at 2 moves on across the gap.
    let page = s.read_all(2, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), [4, 5]);
    let mut pager = s.pager(0, 2);
    let mut seen = Vec::new();
    loop {
        let p = pager.next_page().await.unwrap();
        if p.is_empty() {
            break;
        }
        seen.extend(p.iter().map(|e| e.position));
    }
    assert_eq!(seen, [1, 2, 4, 5]);
    // The hole is not a break in the audit chain.
    let report = s.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.checked, report.sealed_head), (4, 5));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_commit_in_position_order() {
    // Many writers on distinct aggregates: whatever a concurrent reader observes is always a
    // dense prefix (no rollbacks here, so no gaps may ever be seen).
    let Some((s, _db)) = pg_store().await else {
        return;
    };
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    put_env(&s, &format!("env-{w}-{i}"), "E").await;
                }
            })
        })
        .collect();
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                let all = s.read_all(0, 1000).await.unwrap();
                for (i, e) in all.iter().enumerate() {
                    assert_eq!(e.position, i as i64 + 1, "reader saw a hole");
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    reader.await.unwrap();
    assert_eq!(s.head().await.unwrap(), 160);
    assert!(s.verify().await.unwrap().ok);
    s.close().await;
}
