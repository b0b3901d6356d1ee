//! Read-only commands read only (issue 13): `audit verify`, `audit export`, `audit show` and
//! `status` on a mistyped path or an empty database refuse with exit code 3 (not 0 "intact", not
//! 2 "problem found") and create nothing; `audit verify` no longer seals, so a row inserted by
//! SQL after the sealed head is not blessed by the check meant to catch it. The real binary, on
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::environment::{Environment, EnvironmentCommand};
use store::{CommandMeta, Store};
use support::binary::Proc;

const READ_ONLY: [&[&str]; 4] = [
    &["audit", "verify"],
    &["audit", "export"],
    &["audit", "show", "--event", "ev"],
    &["status"],
];

fn run(db_url: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::new(Vec::new(), dir.path().join("log"));
    let mut all = vec!["--database-url".to_string(), db_url.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (status, out, err) = proc.run_once(&all);
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn a_mistyped_sqlite_path_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    for args in READ_ONLY {
        let (code, out, err) = run(&url, args);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(err.contains("no database file"), "{args:?}: {err}");
        assert!(!out.contains("intact"), "{out}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_is_refused_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("empty.db");
    std::fs::write(&sqlite, b"").unwrap();
    let mut urls = vec![format!("sqlite://{}", sqlite.display())];
    urls.extend(store::testing::fresh_pg_url().await);
    for url in &urls {
        for args in READ_ONLY {
            let (code, out, err) = run(url, args);
            assert_eq!(code, 3, "{url} {args:?}: {out}{err}");
            assert!(err.contains("never migrated"), "{args:?}: {err}");
        }
        // Still empty: nothing was migrated.
        let (code, _, err) = run(url, &["audit", "verify"]);
        assert_eq!(code, 3, "{err}");
    }
    for url in urls.iter().filter(|u| u.starts_with("postgres")) {
        store::testing::drop_pg_database(url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_only_and_a_row_inserted_by_sql_stays_unsealed() {
    use store::testing::{Backend, TestDb};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::create(backend).await else {
            continue;
        };
        let s: &Store = &db.store;
        s.execute::<Environment>(
            "env",
            EnvironmentCommand::Put {
                course: Default::default(),
                id: "env".into(),
                name: "Env".into(),
                moodle_template_course_id: None,
            },
            &CommandMeta::new("test"),
        )
        .await
        .unwrap();
        let sealed = s.sealed_head().await.unwrap();
        assert!(sealed > 0);
        // A forged row appended by hand, after the sealed head.
        let columns = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                       event_version, payload, metadata";
        match s.pool() {
            store::DbPool::Sqlite(p) => {
                let forged = format!(
                    "{columns}, position) SELECT 'environment', 'forged', 1, 'Put', '1', '{{}}', \
                     '{{}}', max(position) + 1 FROM events"
                );
                sqlx::query(&forged).execute(p).await.unwrap();
            }
            store::DbPool::Postgres(p) => {
                let forged = format!(
                    "{columns}) VALUES ('environment', 'forged', 1, 'Put', '1', '{{}}', '{{}}')"
                );
                sqlx::query(&forged).execute(p).await.unwrap();
            }
        }
        let (code, out, err) = run(&db.url, &["audit", "verify"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("not sealed yet"), "{out}");
        assert_eq!(
            s.sealed_head().await.unwrap(),
            sealed,
            "verify sealed the forged row"
        );
        let (code, out, err) = run(&db.url, &["status", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(s.sealed_head().await.unwrap(), sealed);
    }
}
