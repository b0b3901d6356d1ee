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

/// The one fresh-database helper and the per-backend test macro, from the store crate.
pub use store::both_backends;
pub use store::testing::{Backend, TestDb};

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

    /// Records an environment linked to `template` straight in the store, as a PUT with Moodle
    /// off would: for tests whose Moodle is pointed nowhere (a PUT would ask Moodle whether the
    /// template exists).
    pub async fn seed_environment(&self, id: &str, template: i64) {
        self.store()
            .execute::<domain::environment::Environment>(
                id,
                domain::environment::EnvironmentCommand::Put {
                    id: id.to_string(),
                    name: format!("Environment {id}"),
                    moodle_template_course_id: Some(template),
                    course: Default::default(),
                },
                &store::CommandMeta::new("test"),
            )
            .await
            .expect("environment recorded");
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
pub mod control;
pub mod drive;
pub mod lifecycle;
pub mod proxy;
pub mod real_moodle;
pub mod scratch_service;

/// Whether a course (by its shortname and idnumber) is OpenVLE event `event`'s: an event shaped
/// by the defaults carries the idnumber `ovle-<event id>` (its shortname is readable), one
/// deployed without course shaping the shortname `ovle-<event id>`.
pub fn is_course_of(shortname: &str, idnumber: &str, event: &str) -> bool {
    let own = format!("ovle-{event}");
    shortname == own || idnumber == own
}

/// The event a course belongs to, read from its idnumber or shortname (`ovle-<event id>`).
pub fn event_of_course<'a>(shortname: &'a str, idnumber: &'a str) -> Option<&'a str> {
    idnumber
        .strip_prefix("ovle-")
        .or_else(|| shortname.strip_prefix("ovle-"))
}
