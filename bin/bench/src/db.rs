//! Fresh benchmark databases: a SQLite file in the temp directory, or a `bench_<uuid>` database on
//! the `--pg` server; both removed by [`BenchDb::remove`].

use anyhow::Context;
use store::sqlx::{self, Connection};

/// Which backend a figure was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        }
    }
}

/// A database made for one benchmark.
#[derive(Debug)]
pub struct BenchDb {
    pub kind: Kind,
    pub url: String,
    /// PostgreSQL: the server URL without a database (for the DROP).
    base: Option<String>,
    name: String,
}

/// `postgres://u@h:p/db?x` → `postgres://u@h:p`.
pub fn pg_base(url: &str) -> String {
    let url = url.trim();
    let url = url.split('?').next().unwrap_or(url);
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[..i + 3 + j].to_string(),
            None => url.to_string(),
        },
        None => url.trim_end_matches('/').to_string(),
    }
}

impl BenchDb {
    /// A new SQLite file (created by `Store::connect`).
    pub fn sqlite() -> BenchDb {
        let name = format!("openvle-bench-{}.db", uuid::Uuid::new_v4().simple());
        let path = std::env::temp_dir().join(&name);
        BenchDb {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}", path.display()),
            base: None,
            name,
        }
    }

    /// A new, empty PostgreSQL database on the `pg` server.
    pub async fn postgres(pg: &str) -> anyhow::Result<BenchDb> {
        let base = pg_base(pg);
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let admin = format!("{base}/postgres");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("PostgreSQL at {base} is unreachable"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let _ = conn.close().await;
        Ok(BenchDb {
            kind: Kind::Postgres,
            url: format!("{base}/{name}"),
            base: Some(base),
            name,
        })
    }

    /// A fresh database of this kind.
    pub async fn fresh(kind: Kind, pg: &str) -> anyhow::Result<BenchDb> {
        match kind {
            Kind::Sqlite => Ok(BenchDb::sqlite()),
            Kind::Postgres => BenchDb::postgres(pg).await,
        }
    }

    /// Drops the database (best-effort; a failure is printed).
    pub async fn remove(self) {
        match (&self.kind, &self.base) {
            (Kind::Postgres, Some(base)) => {
                match sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
                    Ok(mut conn) => {
                        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                        if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
                            eprintln!("could not drop {}: {e}", self.name);
                        }
                        let _ = conn.close().await;
                    }
                    Err(e) => eprintln!("could not drop {}: {e}", self.name),
                }
            }
            _ => {
                let path = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(
            pg_base("postgres://postgres@127.0.0.1:5432"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert_eq!(
            pg_base("postgres://postgres@127.0.0.1:5432/x?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}
