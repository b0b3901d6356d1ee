//! Fresh databases for tests (this crate's and other crates'): the one helper every test
//! suite uses, compiled only for tests (`cfg(test)`) or with the `testing` feature, which the
//! other crates enable in their dev-dependencies (so production builds carry no panicking
//! helper).
//!
//! - [`TestDb::create`]: a fresh, migrated store on either backend, removed when dropped;
//!   [`both_backends!`](crate::both_backends) runs a test body once per backend.
//! - PostgreSQL tests print `skipped` and pass when `OPENVLE_TEST_PG` is unset, unless
//!   `OPENVLE_REQUIRE_PG` is set (as `.ci/run` does): then they fail, everywhere alike.
//!
//! - [`fresh_sqlite_url`]: a new SQLite file in the temp directory.
//! - [`fresh_pg_url`]: a new PostgreSQL database `t_<uuid>` on the server named by the
//!   `OPENVLE_TEST_PG` base URL (e.g. `postgres://postgres@127.0.0.1:5432`). When the variable is
//!   unset it prints a "skipped" line and returns `None`, so the caller returns early; when it is
//!   set but the server cannot be reached it panics, so CI (which always sets it) never skips
//!   silently. Drop the database with [`drop_pg_database`] (best-effort), or use [`PgTestDb`].
//!
//! ```no_run
//! # async fn t() {
//! let Some(url) = store::testing::fresh_pg_url().await else { return };
//! let store = store::Store::connect(&url).await.unwrap();
//! // …
//! store.close().await;
//! store::testing::drop_pg_database(&url).await;
//! # }
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sqlx::Connection;

/// The environment variable naming the PostgreSQL server tests use.
pub const PG_ENV: &str = "OPENVLE_TEST_PG";

/// Set (to anything but empty or `0`), a missing `OPENVLE_TEST_PG` fails the test instead of
/// skipping it: CI never skips a PostgreSQL test silently.
pub const REQUIRE_PG_ENV: &str = "OPENVLE_REQUIRE_PG";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, migrated store and what must live as long as it (the SQLite file, the PostgreSQL
/// database), removed when dropped.
pub struct TestDb {
    pub url: String,
    pub store: crate::Store,
    pub backend: Backend,
    _pg: Option<PgTestDb>,
}

impl TestDb {
    /// A fresh store, or None (after printing "skipped") for PostgreSQL without
    /// `OPENVLE_TEST_PG` and without `OPENVLE_REQUIRE_PG`.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let (url, pg) = match backend {
            Backend::Sqlite => (fresh_sqlite_url(), None),
            Backend::Postgres => {
                let pg = PgTestDb::new().await?;
                (pg.url.clone(), Some(pg))
            }
        };
        let store = crate::Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("opening the test store {url}: {e}"));
        Some(TestDb {
            url,
            store,
            backend,
            _pg: pg,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            remove_sqlite_files(&self.url);
        }
    }
}

/// Runs an async test body once per backend.
///
/// - `both_backends!(name, …)` with `async fn name(backend: Backend)` makes `name::sqlite` and
///   `name::postgres`;
/// - attributes before the names (`both_backends!(#[ignore] name)`) go on every test made;
/// - `both_backends!(store: name, …)` with `async fn name(store: &Store)` makes
///   `sqlite::name` and `postgres::name`, each on a fresh store.
#[macro_export]
macro_rules! both_backends {
    (store: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::testing::TestDb::create($crate::testing::Backend::Sqlite)
                        .await
                        .expect("a SQLite store");
                    super::$name(&db.store).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) =
                        $crate::testing::TestDb::create($crate::testing::Backend::Postgres).await
                    else {
                        return;
                    };
                    super::$name(&db.store).await;
                    db.store.close().await;
                }
            )*
        }
    };
    (@each $attrs:tt $($name:ident),+) => {
        $($crate::both_backends!(@one $attrs $name);)+
    };
    (@one [$(#[$meta:meta])*] $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$meta])*
            async fn sqlite() {
                super::$name($crate::testing::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$meta])*
            async fn postgres() {
                super::$name($crate::testing::Backend::Postgres).await
            }
        }
    };
    ($(#[$meta:meta])* $($name:ident),+ $(,)?) => {
        $crate::both_backends!(@each [$(#[$meta])*] $($name),+);
    };
}

fn pg_required() -> bool {
    std::env::var(REQUIRE_PG_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `sqlite://<temp dir>/openvle-test-<uuid>.db` (created by `Store::connect`).
pub fn fresh_sqlite_url() -> String {
    let path =
        std::env::temp_dir().join(format!("openvle-test-{}.db", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}", path.display())
}

/// Removes a SQLite database made by [`fresh_sqlite_url`] with its WAL files (best-effort).
pub fn remove_sqlite_files(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// The base URL from `OPENVLE_TEST_PG` without a trailing slash or database, or None (after
/// printing why the test is skipped).
pub fn pg_base_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(v) if !v.trim().is_empty() => Some(strip_database(v.trim())),
        _ => {
            assert!(
                !pg_required(),
                "{REQUIRE_PG_ENV} is set but {PG_ENV} is not: the PostgreSQL tests cannot be skipped"
            );
            println!(
                "skipped: set {PG_ENV}=postgres://postgres@127.0.0.1:5432 to run the PostgreSQL tests"
            );
            None
        }
    }
}

/// `postgres://u@h:p/db?x` → `postgres://u@h:p` (query kept aside: not needed for tests).
fn strip_database(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[..i + 3 + j].to_string(),
            None => url.to_string(),
        },
        None => url.trim_end_matches('/').to_string(),
    }
}

/// Creates a fresh, empty database and returns its URL (None when `OPENVLE_TEST_PG` is unset).
///
/// # Panics
/// When `OPENVLE_TEST_PG` is set but the server refuses the connection or the CREATE DATABASE.
pub async fn fresh_pg_url() -> Option<String> {
    let base = pg_base_url()?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = format!("{base}/postgres");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV} is set but {admin} is unreachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    Some(format!("{base}/{name}"))
}

/// Drops a database made by [`fresh_pg_url`] (best-effort: errors are printed, not raised).
pub async fn drop_pg_database(url: &str) {
    let Some((base, name)) = url.rsplit_once('/') else {
        return;
    };
    if !name.starts_with("t_") {
        eprintln!("not dropping {name}: not a test database");
        return;
    }
    match sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
        Ok(mut conn) => {
            if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
            {
                eprintln!("could not drop test database {name}: {e}");
            }
            let _ = conn.close().await;
        }
        Err(e) => eprintln!("could not drop test database {name}: {e}"),
    }
}

/// A fresh PostgreSQL database dropped (best-effort) when this guard is dropped.
#[derive(Debug)]
pub struct PgTestDb {
    pub url: String,
}

impl PgTestDb {
    /// None when `OPENVLE_TEST_PG` is unset (a "skipped" line was printed).
    pub async fn new() -> Option<PgTestDb> {
        fresh_pg_url().await.map(|url| PgTestDb { url })
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        // Drop cannot await and may run inside a runtime: drop the database from a thread with
        // its own small runtime.
        let url = std::mem::take(&mut self.url);
        let handle = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_pg_database(&url));
            }
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            strip_database("postgres://postgres@127.0.0.1:5432"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert_eq!(
            strip_database("postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert!(fresh_sqlite_url().starts_with("sqlite://"));
    }
}
