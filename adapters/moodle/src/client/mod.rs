//! The Moodle REST client: one async method per web-service function.
//!
//! This file holds the transport (one POST per call with the token in its body, timeouts, body
//! limits, metrics, the scrubbing of errors) and the batching; the functions are grouped as
//! Moodle groups them, one file each: `courses.rs`, `accounts.rs` and `enrol.rs`.
//!
//! Every call is a POST of a form body to `{url}/webservice/rest/server.php`; the token is only in
//! that body. Large inputs are split into batches sized by PHP's `max_input_vars`. When a later
//! batch fails, earlier batches have taken effect: callers reconcile by looking up (look-ups are
//! idempotent and cheap).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::config::{check_url, MoodleSettings};
use crate::error::MoodleError;
use crate::secret::Secret;
use crate::types::SiteInfo;
use crate::wire::{self, Form};

mod accounts;
mod courses;
mod enrol;

/// Most users per `core_user_create_users` call (pitfalls: keep batches well under the limits).
pub const MAX_USERS_PER_CALL: usize = 100;
/// Most enrolments per `enrol_manual_enrol_users`/`unenrol_users` call.
pub const MAX_ENROLMENTS_PER_CALL: usize = 500;
/// Most courses per `core_course_delete_courses` call.
pub const MAX_DELETES_PER_CALL: usize = 10;

/// Transport options of a [`MoodleClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Per-call timeout.
    pub timeout: Duration,
    /// Timeout of `core_course_duplicate_course` (backup + restore inside the request).
    pub duplicate_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// PHP `max_input_vars` override; `None` = derive from the site release.
    pub max_input_vars: Option<usize>,
    /// Accept `http://` URLs (local test sites, the simulator).
    pub allow_insecure_http: bool,
    /// Largest response body read.
    pub max_body_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            duplicate_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_input_vars: None,
            allow_insecure_http: false,
            max_body_bytes: wire::MAX_BODY_BYTES,
        }
    }
}

/// A Moodle web-service client. Cheap to clone; clones share the connection pool, the cached site
/// release and the call counter.
#[derive(Clone)]
pub struct MoodleClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    opts: ClientOptions,
    release: RwLock<Option<String>>,
    calls: AtomicU64,
}

impl std::fmt::Debug for MoodleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoodleClient")
            .field("endpoint", &self.inner.endpoint)
            .field("token", &self.inner.token)
            .finish()
    }
}

impl MoodleClient {
    /// A client from settings (URL and token required, whether or not `enabled` is set).
    pub fn new(settings: &MoodleSettings) -> Result<Self, MoodleError> {
        let url = settings
            .url
            .as_deref()
            .ok_or(crate::config::ConfigError::Missing { var: "MOODLE_URL" })?;
        let token = settings
            .token
            .clone()
            .ok_or(crate::config::ConfigError::Missing {
                var: "MOODLE_TOKEN",
            })?;
        let opts = ClientOptions {
            timeout: settings.timeout,
            duplicate_timeout: settings.duplicate_timeout,
            connect_timeout: settings.connect_timeout,
            max_input_vars: settings.max_input_vars,
            allow_insecure_http: settings.allow_insecure_http,
            max_body_bytes: wire::MAX_BODY_BYTES,
        };
        Self::from_parts(url, token, opts)
    }

    /// A client for the site at `url` (its wwwroot) with `token`.
    pub fn from_parts(url: &str, token: Secret, opts: ClientOptions) -> Result<Self, MoodleError> {
        let url = check_url(url, opts.allow_insecure_http)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            // A redirect would re-send the form, token included, to wherever `Location` points
            // (307/308 keep the POST body): never follow one, report it (see `send`).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("openvle-moodle/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MoodleError::Transport {
                function: String::new(),
                detail: format!("cannot build the HTTP client: {e}"),
                outcome_unknown: false,
            })?;
        Ok(MoodleClient {
            inner: Arc::new(Inner {
                http,
                endpoint: format!("{url}/webservice/rest/server.php"),
                token,
                opts,
                release: RwLock::new(None),
                calls: AtomicU64::new(0),
            }),
        })
    }

    /// HTTP requests sent so far by this client and its clones.
    pub fn calls_made(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The endpoint posted to (contains no secret).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The site release as last seen by [`MoodleClient::site_info`] or [`MoodleClient::set_release`].
    pub fn release(&self) -> Option<String> {
        self.inner
            .release
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the site release (used to size batches) without calling Moodle.
    pub fn set_release(&self, release: &str) {
        *self
            .inner
            .release
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(release.to_string());
    }

    /// How long a `core_course_duplicate_course` call may take before it is given up (the window
    /// in which a duplication whose answer never came may still land its course).
    pub fn duplicate_timeout(&self) -> Duration {
        self.inner.opts.duplicate_timeout
    }

    /// The `max_input_vars` assumed: the override, else from the known release, else 1000.
    pub fn max_input_vars(&self) -> usize {
        self.inner
            .opts
            .max_input_vars
            .unwrap_or_else(|| wire::default_max_input_vars(self.release().as_deref()))
    }

    /// Splits items into batches; asks Moodle for its release only when it matters (the input
    /// does not fit the conservative 1000-variable budget and no override/release is known).
    async fn plan(&self, item_vars: &[usize], max_items: usize) -> Vec<Range<usize>> {
        let total: usize = item_vars.iter().sum();
        if self.inner.opts.max_input_vars.is_none()
            && self.release().is_none()
            && total > wire::var_budget(1000)
        {
            // Failure is fine here: the conservative limit is used and the real call reports errors.
            let _ = self.site_info().await;
        }
        wire::plan_batches(
            item_vars,
            wire::var_budget(self.max_input_vars()),
            max_items,
        )
    }

    /// Posts one call and returns the raw 200 body.
    async fn post(&self, function: &'static str, form: &Form) -> Result<Vec<u8>, MoodleError> {
        let timeout = if function == "core_course_duplicate_course" {
            self.inner.opts.duplicate_timeout
        } else {
            self.inner.opts.timeout
        };
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.send(function, form, timeout).await
    }

    async fn send(
        &self,
        function: &'static str,
        form: &Form,
        timeout: Duration,
    ) -> Result<Vec<u8>, MoodleError> {
        let body = form.body(self.inner.token.expose(), function);
        let transport = |e: reqwest::Error| MoodleError::Transport {
            function: function.to_string(),
            outcome_unknown: !e.is_connect(),
            detail: error_chain(&e.without_url()),
        };
        let mut resp = self
            .inner
            .http
            .post(&self.inner.endpoint)
            .timeout(timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if status >= 500 {
            return Err(MoodleError::Transport {
                function: function.to_string(),
                detail: format!("HTTP {status}"),
                outcome_unknown: true,
            });
        }
        // Any other status, a redirect (3xx: not followed) included, is a permanent `Http` error.
        if status != 200 {
            return Err(MoodleError::Http {
                function: function.to_string(),
                status,
            });
        }
        let max = self.inner.opts.max_body_bytes;
        let too_large = || MoodleError::BadResponse {
            function: function.to_string(),
            detail: format!("response larger than {max} bytes"),
            transient: false,
        };
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if buf.len() + chunk.len() > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// Posts, parses with `parse`, and records the span, metrics and outcome of the call.
    async fn call<T>(
        &self,
        function: &'static str,
        form: &Form,
        batch: usize,
        parse: impl FnOnce(&[u8]) -> Result<T, MoodleError>,
    ) -> Result<T, MoodleError> {
        let span = tracing::info_span!(
            "moodle.call",
            function,
            batch_size = batch,
            duration_ms = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        let started = Instant::now();
        // Every answer passes here: the token a server, plugin or proxy may echo back is
        // scrubbed from the body before it is parsed (so no warning, message or value a caller
        // gets carries it: the saga stores warnings' text in events kept for ever), and from
        // every error before it reaches Display/Debug, logs, metrics or callers.
        let result = match self.post(function, form).instrument(span.clone()).await {
            Ok(body) => parse(&scrubbed(&self.inner.token, body)),
            Err(e) => Err(e),
        }
        .map_err(|e| e.redact(&self.inner.token));
        let elapsed = started.elapsed();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        span.record("duration_ms", elapsed.as_millis() as u64);
        span.record("outcome", outcome);
        metrics::histogram!("openvle_moodle_call_duration_seconds", "function" => function)
            .record(elapsed.as_secs_f64());
        metrics::counter!("openvle_moodle_calls_total", "function" => function, "outcome" => outcome)
            .increment(1);
        let _guard = span.enter();
        if let Err(e) = &result {
            let code = e.code();
            tracing::warn!(code = %code, transient = e.is_transient(), outcome_unknown = e.outcome_unknown(), "moodle call failed: {e}");
            metrics::counter!("openvle_moodle_call_errors_total", "function" => function, "code" => code)
                .increment(1);
        } else {
            tracing::debug!("moodle call ok");
        }
        result
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        function: &'static str,
        form: &Form,
        batch: usize,
    ) -> Result<T, MoodleError> {
        self.call(function, form, batch, |b| wire::parse_body(function, b))
            .await
    }

    /// Calls any function with hand-built arguments and returns the parsed JSON (`null` included).
    /// For functions without a typed method, diagnostics and tests.
    pub async fn call_raw(
        &self,
        function: &'static str,
        args: &Form,
    ) -> Result<serde_json::Value, MoodleError> {
        self.call_json(function, args, 1).await
    }

    /// `core_webservice_get_site_info`; caches the release for batch sizing.
    pub async fn site_info(&self) -> Result<SiteInfo, MoodleError> {
        let info: SiteInfo = self
            .call_json("core_webservice_get_site_info", &Form::new(), 0)
            .await?;
        if let Some(r) = &info.release {
            self.set_release(r);
        }
        Ok(info)
    }
}

fn invalid(function: &str, detail: String) -> MoodleError {
    MoodleError::InvalidInput {
        function: function.to_string(),
        detail,
    }
}

/// `body` with every form of `token` replaced (the rule of [`Secret::scrub`], the one errors
/// get). A body that is not UTF-8 is left as it is: it is not JSON either, and the parser
/// refuses it without quoting it.
fn scrubbed(token: &Secret, body: Vec<u8>) -> Vec<u8> {
    match String::from_utf8(body) {
        Ok(text) => token.scrub(&text).into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
