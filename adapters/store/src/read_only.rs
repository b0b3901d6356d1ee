//! Opening the store for the commands that only read it (`audit verify`, `audit export`, `audit
//! show`, `status`): a mistyped DATABASE_URL must not create and migrate an empty database and
//! then report "chain intact" or "nothing parked" about it, and a check meant to catch a row
//! inserted by hand must not write anything itself.

use std::collections::HashSet;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use crate::error::StoreError;
use crate::store::{
    backend_of, Backend, DbPool, Store, StoreOptions, POSTGRES_MIGRATOR, SQLITE_MIGRATOR,
};

impl Store {
    /// Opens an existing database of the engine for reading only: refused
    /// ([`StoreError::NotAStore`]) when there is none at `database_url` or its migrations are
    /// not all applied; nothing is created, migrated or written.
    pub async fn open_read_only(database_url: &str) -> Result<Store, StoreError> {
        if backend_of(database_url)? == Backend::Sqlite {
            let options = SqliteConnectOptions::from_str(database_url.trim()).map_err(|e| {
                StoreError::Config(format!("DATABASE_URL is not a SQLite URL ({e})"))
            })?;
            let path = options.get_filename();
            if !path.exists() {
                return Err(StoreError::NotAStore(format!(
                    "there is no database file at {} (a mistyped DATABASE_URL?)",
                    path.display()
                )));
            }
        }
        let store = Store::connect_with(
            database_url,
            StoreOptions {
                migrate: false,
                read_only: true,
                ..StoreOptions::default()
            },
        )
        .await?;
        store.require_migrated().await?;
        Ok(store)
    }

    /// Every migration this binary knows is applied.
    async fn require_migrated(&self) -> Result<(), StoreError> {
        let applied: Result<Vec<i64>, sqlx::Error> = match self.pool() {
            DbPool::Sqlite(pool) => {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await
            }
            DbPool::Postgres(pool) => {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await
            }
        };
        let applied: HashSet<i64> = match applied {
            Ok(v) => v.into_iter().collect(),
            // No migrations table: not a database of the engine (or an empty one).
            Err(sqlx::Error::Database(_)) => {
                return Err(StoreError::NotAStore(
                    "the database holds no schema of the engine (never migrated: run \
                     `openvle-moodle migrate` or start the engine once)"
                        .to_string(),
                ))
            }
            Err(e) => return Err(StoreError::from(e)),
        };
        let migrator = match self.backend() {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let missing: Vec<i64> = migrator
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotAStore(format!(
                "the database lacks migrations {missing:?} of this binary: run `openvle-moodle \
                 migrate` (a writer) first"
            )))
        }
    }
}
