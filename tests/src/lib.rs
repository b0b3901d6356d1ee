//! Shared helpers of the integration tests: a fresh store per test (SQLite in a temporary
//! directory, or a fresh PostgreSQL database when `OPENVLE_TEST_PG` is set) and the real API
//! served on a random loopback port.
//!
//! PostgreSQL tests print `skipped` and pass when `OPENVLE_TEST_PG` is unset, unless
//! `OPENVLE_REQUIRE_PG` is set (as `.ci/run` does), in which case they fail.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub use api::{ApiConfig, AppState, Token};
pub use store::Store;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn name(backend: Backend)` test once per backend:
/// `both_backends!(name);` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )+};
}

/// A fresh, migrated store and what must live as long as it.
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database, or None (after printing "skipped") for PostgreSQL without
    /// `OPENVLE_TEST_PG`.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let store = Store::connect(&url).await.expect("sqlite store");
                Some(TestDb {
                    url,
                    store,
                    backend,
                    _dir: Some(dir),
                    pg_drop: None,
                })
            }
            Backend::Postgres => {
                let base = match std::env::var("OPENVLE_TEST_PG") {
                    Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                    _ => {
                        if std::env::var_os("OPENVLE_REQUIRE_PG").is_some() {
                            panic!("OPENVLE_REQUIRE_PG is set but OPENVLE_TEST_PG is not");
                        }
                        eprintln!("skipped: set OPENVLE_TEST_PG=postgres://postgres@127.0.0.1:5432 to run the PostgreSQL variant");
                        return None;
                    }
                };
                let server = server_url(&base);
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                create_pg_database(&server, &name).await;
                let url = format!("{server}/{name}");
                let store = Store::connect(&url).await.expect("postgres store");
                Some(TestDb {
                    url,
                    store,
                    backend,
                    _dir: None,
                    pg_drop: Some((server, name)),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort: drop the per-test PostgreSQL database.
        if let Some((server, name)) = self.pg_drop.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut conn) =
                        sqlx::PgConnection::connect(&format!("{server}/postgres")).await
                    {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// `postgres://user@host:port` without a database path or query.
fn server_url(url: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let end = rest
        .find(['/', '?'])
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    url[..end].to_string()
}

async fn create_pg_database(server: &str, name: &str) {
    use sqlx::Connection;
    let admin = format!("{server}/postgres");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
}

/// The API served on 127.0.0.1:0 over a fresh store.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub state: AppState,
    /// Sent as `Authorization: Bearer` by the helpers (None: no header).
    pub token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Default configuration: no tokens, Moodle disabled.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, ApiConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: ApiConfig) -> Option<TestApp> {
        Self::spawn_custom(backend, config, |s| s).await
    }

    /// With a chance to adjust the state (a Moodle client, a saga control).
    pub async fn spawn_custom(
        backend: Backend,
        config: ApiConfig,
        customize: impl FnOnce(AppState) -> AppState,
    ) -> Option<TestApp> {
        let db = TestDb::create(backend).await?;
        let token = config.writer_token.as_ref().map(|t| t.expose().to_string());
        let state = customize(AppState::new(db.store.clone(), config).expect("app state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        Some(TestApp {
            base: format!("http://{addr}"),
            client,
            db,
            state,
            token,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    pub fn store(&self) -> &Store {
        &self.db.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the app's token (if any).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request with an optional JSON body; returns the status and the JSON answer
    /// (`Value::Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.expect("request");
        read(resp).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates an environment (asserting 202).
    pub async fn environment(&self, id: &str, template: Option<i64>) -> Value {
        let (status, body) = self
            .put(
                &format!("/api/v1/environments/{id}"),
                &json!({ "name": format!("Environment {id}"), "moodle_template_course_id": template }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Deploys an event with `n` participants (asserting 202); returns its id.
    pub async fn deploy(&self, environment_id: &str, n: usize) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let (status, body) = self
            .post("/api/v1/events", &deploy_body(&id, environment_id, n))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        id
    }

    /// The highest position of the log (0 when empty).
    pub async fn head(&self) -> i64 {
        self.store().head().await.expect("head")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// A participant as OpenVLE sends it.
pub fn participant(id: &str, role: &str) -> Value {
    json!({
        "id": id,
        "email": format!("{id}@example.org"),
        "first_name": "First",
        "last_name": format!("Last {id}"),
        "role": role,
    })
}

/// A deploy body with `n` participants (the first an instructor, the rest students).
pub fn deploy_body(id: &str, environment_id: &str, n: usize) -> Value {
    let participants: Vec<Value> = (0..n)
        .map(|i| {
            participant(
                &format!("p{i:05}"),
                if i == 0 { "instructor" } else { "student" },
            )
        })
        .collect();
    json!({
        "id": id,
        "environment_id": environment_id,
        "name": "Lab run",
        "participants": participants,
    })
}

/// The `error.code` of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

pub mod binary;
pub mod drive;
pub mod lifecycle;
pub mod proxy;
pub mod real_moodle;
pub mod scratch_service;
