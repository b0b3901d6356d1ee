//! The HTTP API of openvle-moodle: OpenVLE core's contract (`shared/api-contract.md`,
//! `docs/openapi.json`), audit reads, health, readiness and Prometheus metrics.
//!
//! Build an [`AppState`] from a [`store::Store`] and an [`ApiConfig`], then either mount
//! [`router`] yourself or call [`serve`] with a bound listener and a shutdown future.
//!
//! ```ignore
//! let state = api::AppState::new(store, config)?;            // builds the Moodle client if enabled
//! let state = state.with_saga(std::sync::Arc::new(my_saga));  // optional: retry through the saga
//! api::check_bind_policy(addr, state.config())?;              // refuses 0.0.0.0 without tokens
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! api::serve(listener, state, shutdown_signal).await?;
//! ```

mod audit;
mod auth;
mod body;
mod commands;
mod environments;
mod error;
mod event_change;
mod events;
pub mod health;
mod identity;
mod lists;
pub mod metrics;
mod moodle_routes;
mod ops;
mod participants;
mod server;
mod status;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

pub use auth::Actor;
pub use error::ApiError;
pub use moodle_routes::environment_targets;
pub use server::{HttpLimits, BODY_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS};

use projections::saga::SagaSettings;

/// Default limit of a request body (1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Limit of a deploy body (`POST /api/v1/events`): 16 MiB, so a deploy of tens of thousands of
/// participants fits.
pub const DEPLOY_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The OpenAPI 3.1 document of this API (kept in the repository as `docs/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// A bearer token. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Token(secrecy::SecretString);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(secrecy::SecretString::from(value.into()))
    }

    /// The token itself (compare with [`Token::matches`], which runs in constant time).
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Constant-time comparison (of SHA-256 digests, so the length does not leak either).
    pub fn matches(&self, candidate: &str) -> bool {
        auth::constant_time_eq(self.expose().as_bytes(), candidate.as_bytes())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the API is configured.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// OPENVLE_API_TOKEN: may do everything.
    pub writer_token: Option<Token>,
    /// OPENVLE_AUDIT_TOKEN: may only read (GET).
    pub audit_token: Option<Token>,
    /// The Moodle settings (enabled or not, role ids, what delete does).
    pub moodle: moodle::MoodleSettings,
    /// Largest request body, except deploys (default [`BODY_LIMIT`]).
    pub body_limit: usize,
    /// Largest deploy body (default [`DEPLOY_BODY_LIMIT`]).
    pub deploy_body_limit: usize,
    /// Timeouts and the connection cap of [`serve`].
    pub http: HttpLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            writer_token: None,
            audit_token: None,
            moodle: moodle::MoodleSettings::disabled(),
            body_limit: BODY_LIMIT,
            deploy_body_limit: DEPLOY_BODY_LIMIT,
            http: HttpLimits::default(),
        }
    }
}

impl ApiConfig {
    /// Whether any token is configured (then every `/api/v1` route requires one).
    pub fn auth_enabled(&self) -> bool {
        self.writer_token.is_some() || self.audit_token.is_some()
    }

    /// The settings the event view reads (the same translation the worker uses).
    pub fn view_settings(&self) -> SagaSettings {
        self.moodle.saga()
    }
}

/// Refuses to serve without tokens on anything but a loopback address. `Ok` carries the line to
/// log at start-up.
pub fn check_bind_policy(addr: SocketAddr, config: &ApiConfig) -> Result<String, String> {
    if config.auth_enabled() {
        if config.writer_token.is_none() {
            return Ok(format!(
                "serving on {addr}: bearer tokens required; only an auditor token is configured, so every write is refused"
            ));
        }
        return Ok(format!("serving on {addr}: bearer tokens required"));
    }
    if addr.ip().is_loopback() {
        Ok(format!(
            "serving on {addr} WITHOUT authentication (no OPENVLE_API_TOKEN / OPENVLE_AUDIT_TOKEN): loopback only"
        ))
    } else {
        Err(format!(
            "refusing to serve on {addr} without tokens: set OPENVLE_API_TOKEN (and OPENVLE_AUDIT_TOKEN) or listen on a loopback address such as 127.0.0.1"
        ))
    }
}

/// A boxed future, for object-safe async traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Control of the Moodle saga, implemented by the saga crate.
pub trait SagaControl: Send + Sync + 'static {
    /// Resumes the parked saga of an OpenVLE event (and its parked participants) and wakes the
    /// workers. `Ok(true)` when something was parked, `Ok(false)` when there was nothing to resume.
    fn retry<'a>(&'a self, event_id: &'a str, by: &'a str) -> BoxFuture<'a, Result<bool, String>>;

    /// Resumes every parked event, or those parked with `code`; the ids resumed.
    fn retry_parked<'a>(
        &'a self,
        code: Option<&'a str>,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, String>>;

    /// Retries one parked participant of an event. `Ok(true)` when they were parked.
    fn retry_participant<'a>(
        &'a self,
        event_id: &'a str,
        participant_id: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;

    /// Where the saga stands (`openvle-moodle status --json`): lag, in flight, parked events
    /// and participants with code, reason and fix, the last Moodle error.
    fn status(&self) -> BoxFuture<'_, Result<serde_json::Value, String>>;
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    config: ApiConfig,
    moodle: Option<moodle::MoodleClient>,
    saga: Option<Arc<dyn SagaControl>>,
    health: health::Health,
}

impl AppState {
    /// The state over a store. When the Moodle integration is enabled, builds its client from
    /// `config.moodle` (an error names what is missing).
    pub fn new(store: store::Store, config: ApiConfig) -> Result<AppState, String> {
        let moodle = if config.moodle.enabled {
            Some(moodle::MoodleClient::new(&config.moodle).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(AppState::sharing(store, config, moodle))
    }

    /// The state over a store, calling Moodle through `moodle`: the process's one client (and
    /// connection pool), shared with its worker.
    pub fn sharing(
        store: store::Store,
        config: ApiConfig,
        moodle: Option<moodle::MoodleClient>,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                config,
                moodle,
                saga: None,
                health: health::Health::default(),
            }),
        }
    }

    /// Uses this Moodle client (e.g. one pointed at the simulator) instead of the one built from
    /// the settings.
    pub fn with_moodle_client(self, client: moodle::MoodleClient) -> AppState {
        self.rebuild(|inner| inner.moodle = Some(client))
    }

    /// Routes `POST /api/v1/events/{id}/moodle/retry` through the saga. Without it, the API
    /// records the resume itself (the workers pick it up on their next pass).
    pub fn with_saga(self, saga: Arc<dyn SagaControl>) -> AppState {
        self.rebuild(|inner| inner.saga = Some(saga))
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner)) -> AppState {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                store: shared.store.clone(),
                config: shared.config.clone(),
                moodle: shared.moodle.clone(),
                saga: shared.saga.clone(),
                health: shared.health.clone(),
            },
        };
        f(&mut inner);
        AppState {
            inner: Arc::new(inner),
        }
    }

    pub fn store(&self) -> &store::Store {
        &self.inner.store
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub(crate) fn moodle(&self) -> Option<&moodle::MoodleClient> {
        if self.inner.config.moodle.enabled {
            self.inner.moodle.as_ref()
        } else {
            None
        }
    }

    /// The last preflight of Moodle ([`health::run`] keeps it fresh).
    pub fn health(&self) -> &health::Health {
        &self.inner.health
    }

    pub(crate) fn saga(&self) -> Option<&Arc<dyn SagaControl>> {
        self.inner.saga.as_ref()
    }
}

/// Every route of the API (paths as axum spells them), for documentation checks.
pub const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/v1/environments/{environment_id}"),
    ("GET", "/api/v1/environments/{environment_id}"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/participants"),
    ("GET", "/api/v1/events/{id}"),
    ("DELETE", "/api/v1/events/{id}"),
    ("PATCH", "/api/v1/events/{id}"),
    ("POST", "/api/v1/events/{id}/participants"),
    (
        "DELETE",
        "/api/v1/events/{id}/participants/{participant_id}",
    ),
    ("PATCH", "/api/v1/events/{id}/participants/{participant_id}"),
    ("POST", "/api/v1/events/{id}/end"),
    ("GET", "/api/v1/events/{id}/history"),
    ("POST", "/api/v1/events/{id}/moodle/retry"),
    ("GET", "/api/v1/moodle/courses"),
    ("GET", "/api/v1/moodle/users"),
    ("GET", "/api/v1/moodle/check"),
    ("POST", "/api/v1/moodle/retry"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/verify"),
    ("GET", "/api/v1/capabilities"),
    ("GET", "/api/v1/status"),
    ("POST", "/api/v1/webhooks/redeliver"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The whole API.
pub fn router(state: AppState) -> Router {
    metrics::init();
    let deploy_limit = DefaultBodyLimit::max(state.config().deploy_body_limit);
    let protected = Router::new()
        .route(
            "/api/v1/environments/{environment_id}",
            put(environments::put_environment).get(environments::get_environment),
        )
        .route(
            "/api/v1/events",
            post(events::deploy)
                .layer(deploy_limit)
                .get(lists::list_events),
        )
        .route("/api/v1/participants", get(lists::find_participants))
        .route(
            "/api/v1/events/{id}",
            get(events::get_event)
                .delete(events::delete_event)
                .patch(event_change::change_event),
        )
        .route(
            "/api/v1/events/{id}/participants",
            post(events::add_participant),
        )
        .route(
            "/api/v1/events/{id}/participants/{participant_id}",
            axum::routing::delete(events::remove_participant)
                .patch(participants::change_participant),
        )
        .route("/api/v1/events/{id}/end", post(events::end_event))
        .route("/api/v1/events/{id}/history", get(events::history))
        .route(
            "/api/v1/events/{id}/moodle/retry",
            post(events::retry_moodle),
        )
        .route("/api/v1/moodle/courses", get(moodle_routes::courses))
        .route("/api/v1/moodle/users", get(moodle_routes::users))
        .route("/api/v1/moodle/check", get(moodle_routes::check))
        .route("/api/v1/moodle/retry", post(moodle_routes::retry_parked))
        .route("/api/v1/audit", get(audit::page))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/capabilities", get(ops::capabilities))
        .route("/api/v1/status", get(status::status))
        .route(
            "/api/v1/webhooks/redeliver",
            post(status::redeliver_webhooks),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = Router::new()
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    protected
        .merge(public)
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(state.config().body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.config().http.body_timeout,
            server::body_deadline,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(metrics::track_requests))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight,
/// under the timeouts and connection cap of `state.config().http` (see [`HttpLimits`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config().http.clone();
    server::run(listener, router(state), limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let config = ApiConfig {
            writer_token: Some(Token::new("s3cret-writer")),
            audit_token: Some(Token::new("s3cret-audit")),
            ..ApiConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(Token::new("abc").matches("abc"));
        assert!(!Token::new("abc").matches("abd"));
        assert!(!Token::new("abc").matches("abcd"));
        assert!(!Token::new("abc").matches(""));
    }

    #[test]
    fn bind_policy() {
        let open = ApiConfig::default();
        assert!(check_bind_policy("127.0.0.1:8080".parse().unwrap(), &open).is_ok());
        assert!(check_bind_policy("[::1]:8080".parse().unwrap(), &open).is_ok());
        assert!(check_bind_policy("0.0.0.0:8080".parse().unwrap(), &open).is_err());
        assert!(check_bind_policy("10.1.2.3:8080".parse().unwrap(), &open).is_err());
        let closed = ApiConfig {
            writer_token: Some(Token::new("w")),
            ..ApiConfig::default()
        };
        assert!(check_bind_policy("0.0.0.0:8080".parse().unwrap(), &closed).is_ok());
    }

    #[test]
    fn openapi_document_covers_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
        for (method, path) in ROUTES {
            let item = &doc["paths"][*path];
            assert!(item.is_object(), "{path} missing from docs/openapi.json");
            assert!(
                item[method.to_lowercase()].is_object(),
                "{method} {path} missing from docs/openapi.json"
            );
        }
    }
}
