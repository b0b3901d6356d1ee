//! The Moodle REST client: one async method per web-service function.
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
use crate::types::*;
use crate::wire::{self, Form};

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

    /// The `max_input_vars` assumed: the override, else from the known release, else 1000.
    /// How long a `core_course_duplicate_course` call may take before it is given up (the window
    /// in which a duplication whose answer never came may still land its course).
    pub fn duplicate_timeout(&self) -> Duration {
        self.inner.opts.duplicate_timeout
    }

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
        // Every error built from what the server answered passes here: scrub the token a server
        // or proxy may echo back before it reaches Display/Debug, logs, metrics or callers.
        let result = match self.post(function, form).instrument(span.clone()).await {
            Ok(body) => parse(&body),
            Err(e) => Err(e),
        }
        .map_err(|e| e.redact(&self.inner.token));
        let elapsed = started.elapsed();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        span.record("duration_ms", elapsed.as_millis() as u64);
        span.record("outcome", outcome);
        metrics::histogram!("moodle_call_duration_seconds", "function" => function)
            .record(elapsed.as_secs_f64());
        metrics::counter!("moodle_calls_total", "function" => function, "outcome" => outcome)
            .increment(1);
        let _guard = span.enter();
        if let Err(e) = &result {
            let code = e.code();
            tracing::warn!(code = %code, transient = e.is_transient(), outcome_unknown = e.outcome_unknown(), "moodle call failed: {e}");
            metrics::counter!("moodle_call_errors_total", "function" => function, "code" => code)
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

    /// `core_course_get_courses_by_field`. An empty value is refused locally for every field:
    /// Moodle would answer every course with an empty idnumber (or nothing useful).
    pub async fn get_courses_by_field(
        &self,
        field: CourseField,
        value: &str,
    ) -> Result<Vec<Course>, MoodleError> {
        const F: &str = "core_course_get_courses_by_field";
        if value.trim().is_empty() {
            return Err(invalid(
                F,
                format!("empty value for field {}", field.as_str()),
            ));
        }
        let mut form = Form::new();
        form.push("field", field.as_str()).push("value", value);
        let env: CoursesEnvelope = self.call_json(F, &form, 1).await?;
        Ok(env.courses)
    }

    /// `core_course_search_courses` (criterianame `search`); `perpage` 0 = all.
    pub async fn search_courses(
        &self,
        text: &str,
        page: u32,
        perpage: u32,
    ) -> Result<CourseSearch, MoodleError> {
        let mut form = Form::new();
        form.push("criterianame", "search")
            .push("criteriavalue", text)
            .push("page", page)
            .push("perpage", perpage);
        self.call_json("core_course_search_courses", &form, 1).await
    }

    /// `core_course_duplicate_course` without options, with the longer duplicate timeout.
    /// On a timeout the course may exist (even half-made): look it up by shortname before retrying.
    pub async fn duplicate_course(
        &self,
        req: &DuplicateCourse,
    ) -> Result<DuplicatedCourse, MoodleError> {
        const F: &str = "core_course_duplicate_course";
        for (name, v) in [("fullname", &req.fullname), ("shortname", &req.shortname)] {
            if v.trim().is_empty() || wire::has_tags(v) {
                return Err(invalid(
                    F,
                    format!("{name} must be non-blank text without HTML tags"),
                ));
            }
        }
        let mut form = Form::new();
        form.push("courseid", req.template_id)
            .push("fullname", &req.fullname)
            .push("shortname", &req.shortname)
            .push("categoryid", req.category_id)
            .push_bool("visible", req.visible);
        self.call_json(F, &form, 1).await
    }

    /// `core_course_update_courses`: per-item problems come back as warnings, the call succeeds.
    pub async fn update_courses(
        &self,
        updates: &[CourseUpdate],
    ) -> Result<Vec<Warning>, MoodleError> {
        const F: &str = "core_course_update_courses";
        let items: Vec<Vec<(&str, String)>> = updates
            .iter()
            .map(|u| {
                let mut item = Vec::new();
                if let Some(v) = u.visible {
                    item.push(("visible", if v { "1" } else { "0" }.to_string()));
                }
                if let Some(v) = &u.fullname {
                    item.push(("fullname", v.clone()));
                }
                if let Some(v) = &u.idnumber {
                    item.push(("idnumber", v.clone()));
                }
                item.push(("id", u.id.to_string()));
                item
            })
            .collect();
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        let mut warnings = Vec::new();
        for r in self.plan(&vars, MAX_ENROLMENTS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects("courses", &items[r.clone()]);
            let env: WarningsEnvelope = self.call_json(F, &form, r.len()).await?;
            warnings.extend(env.warnings);
        }
        Ok(warnings)
    }

    /// `core_course_delete_courses`, at most 10 courses per call (deletion is slow: ~0.3 s each, and
    /// not transactional: courses before a thrown error stay deleted).
    /// Warning `unknowncourseidnumber` means already gone.
    pub async fn delete_courses(&self, ids: &[i64]) -> Result<Vec<Warning>, MoodleError> {
        let mut warnings = Vec::new();
        for chunk in ids.chunks(MAX_DELETES_PER_CALL) {
            let mut form = Form::new();
            form.push_scalars("courseids", chunk);
            let env: WarningsEnvelope = self
                .call_json("core_course_delete_courses", &form, chunk.len())
                .await?;
            warnings.extend(env.warnings);
        }
        Ok(warnings)
    }

    /// `core_course_get_categories` with `criteria` (`id`, `ids`, `name`, `parent`...), without
    /// subcategories; no criteria = every visible category.
    pub async fn get_categories(
        &self,
        criteria: &[(&str, &str)],
    ) -> Result<Vec<Category>, MoodleError> {
        let mut form = Form::new();
        let items: Vec<Vec<(&str, String)>> = criteria
            .iter()
            .map(|(k, v)| vec![("value", v.to_string()), ("key", k.to_string())])
            .collect();
        form.push_objects("criteria", &items)
            .push_bool("addsubcategories", false);
        self.call_json("core_course_get_categories", &form, criteria.len())
            .await
    }

    /// `core_user_get_users_by_field`, batched. Values are validated first: one bad value fails
    /// Moodle's whole call. Email matching is exact (case-sensitive on PostgreSQL): fall back to
    /// [`MoodleClient::get_users`] for misses.
    pub async fn get_users_by_field(
        &self,
        field: UserField,
        values: &[String],
    ) -> Result<Vec<MoodleUser>, MoodleError> {
        const F: &str = "core_user_get_users_by_field";
        for v in values {
            let ok = match field {
                UserField::Email => wire::is_valid_email(v),
                UserField::Username => wire::is_valid_username(v),
                UserField::Id => v.parse::<i64>().is_ok_and(|n| n > 0 && n.to_string() == *v),
            };
            if !ok {
                return Err(invalid(F, format!("invalid {} {v:?}", field.as_str())));
            }
        }
        let mut users = Vec::new();
        for r in self.plan(&vec![1; values.len()], usize::MAX).await {
            let mut form = Form::new();
            form.push("field", field.as_str())
                .push_scalars("values", &values[r.clone()]);
            let found: Vec<MoodleUser> = self.call_json(F, &form, r.len()).await?;
            users.extend(found);
        }
        Ok(users)
    }

    /// `core_user_get_users` (criteria AND-ed). `email`, `firstname` and `lastname` are LIKE
    /// patterns in Moodle (`%`, `_` are wildcards), so only exact case-insensitive matches are kept.
    pub async fn get_users(
        &self,
        criteria: &[(&str, &str)],
    ) -> Result<Vec<MoodleUser>, MoodleError> {
        const F: &str = "core_user_get_users";
        if criteria.is_empty() {
            return Err(invalid(F, "at least one criterion is required".into()));
        }
        let items: Vec<Vec<(&str, String)>> = criteria
            .iter()
            .map(|(k, v)| vec![("value", v.to_string()), ("key", k.to_string())])
            .collect();
        let mut form = Form::new();
        form.push_objects("criteria", &items);
        let env: UsersEnvelope = self.call_json(F, &form, criteria.len()).await?;
        Ok(env
            .users
            .into_iter()
            .filter(|u| {
                criteria.iter().all(|(k, v)| match *k {
                    "email" => u
                        .email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase() == v.to_lowercase()),
                    "firstname" => u.firstname.to_lowercase() == v.to_lowercase(),
                    "lastname" => u.lastname.to_lowercase() == v.to_lowercase(),
                    _ => true,
                })
            })
            .collect())
    }

    /// `core_user_create_users`, batched (≤100 per call), rows in input order, count verified.
    /// Each batch is all-or-nothing in Moodle; earlier batches stay created if a later one fails.
    pub async fn create_users(&self, users: &[NewUser]) -> Result<Vec<CreatedUser>, MoodleError> {
        const F: &str = "core_user_create_users";
        for u in users {
            check_new_user(u).map_err(|d| invalid(F, d))?;
        }
        let items: Vec<Vec<(&str, String)>> = users
            .iter()
            .map(|u| {
                let mut item = vec![("auth", u.auth.clone())];
                if u.createpassword {
                    item.push(("createpassword", "1".to_string()));
                }
                if let Some(p) = &u.password {
                    item.push(("password", p.expose().to_string()));
                }
                item.push(("firstname", u.firstname.clone()));
                item.push(("lastname", u.lastname.clone()));
                item.push(("email", u.email.clone()));
                item.push(("username", u.username.clone()));
                item
            })
            .collect();
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        let mut created = Vec::with_capacity(users.len());
        for r in self.plan(&vars, MAX_USERS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects("users", &items[r.clone()]);
            let sent = r.len();
            let rows: Vec<CreatedUser> = self
                .call(F, &form, sent, |b| {
                    let rows: Vec<CreatedUser> = wire::parse_body(F, b)?;
                    if rows.len() != sent {
                        return Err(MoodleError::CountMismatch {
                            function: F.into(),
                            sent,
                            returned: rows.len(),
                        });
                    }
                    Ok(rows)
                })
                .await?;
            created.extend(rows);
        }
        Ok(created)
    }

    /// `core_enrol_get_enrolled_users` (all enrolment methods; suspended ones unless filtered).
    pub async fn get_enrolled_users(
        &self,
        course_id: i64,
        filter: EnrolledFilter,
    ) -> Result<Vec<EnrolledUser>, MoodleError> {
        let mut form = Form::new();
        form.push("courseid", course_id);
        let option = match filter {
            EnrolledFilter::All => None,
            EnrolledFilter::OnlyActive => Some("onlyactive"),
            EnrolledFilter::OnlySuspended => Some("onlysuspended"),
        };
        if let Some(name) = option {
            form.push_objects(
                "options",
                &[vec![("value", "1".to_string()), ("name", name.to_string())]],
            );
        }
        self.call_json("core_enrol_get_enrolled_users", &form, 1)
            .await
    }

    /// `enrol_manual_enrol_users`, batched (≤500 per call). An upsert: roles are added, and an
    /// enrolment sent without `suspend` becomes active again.
    pub async fn enrol_users(&self, enrolments: &[Enrolment]) -> Result<(), MoodleError> {
        const F: &str = "enrol_manual_enrol_users";
        let items: Vec<Vec<(&str, String)>> = enrolments
            .iter()
            .map(|e| {
                let mut item = vec![
                    ("roleid", e.role_id.to_string()),
                    ("courseid", e.course_id.to_string()),
                ];
                if e.suspend {
                    item.push(("suspend", "1".to_string()));
                }
                item.push(("userid", e.user_id.to_string()));
                item
            })
            .collect();
        self.null_batches(F, "enrolments", &items).await
    }

    /// `enrol_manual_unenrol_users`, batched; unenrolling someone not enrolled is a silent no-op.
    pub async fn unenrol_users(&self, items: &[Unenrolment]) -> Result<(), MoodleError> {
        let items: Vec<Vec<(&str, String)>> = items
            .iter()
            .map(|u| {
                vec![
                    ("courseid", u.course_id.to_string()),
                    ("userid", u.user_id.to_string()),
                ]
            })
            .collect();
        self.null_batches("enrol_manual_unenrol_users", "enrolments", &items)
            .await
    }

    async fn null_batches(
        &self,
        f: &'static str,
        list: &str,
        items: &[Vec<(&str, String)>],
    ) -> Result<(), MoodleError> {
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        for r in self.plan(&vars, MAX_ENROLMENTS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects(list, &items[r.clone()]);
            self.call(f, &form, r.len(), |b| wire::parse_null(f, b))
                .await?;
        }
        Ok(())
    }
}

fn check_new_user(u: &NewUser) -> Result<(), String> {
    if !wire::is_valid_username(&u.username) {
        return Err(format!(
            "username {:?} must be lowercase [-.@_a-z0-9]",
            u.username
        ));
    }
    if !wire::is_valid_email(&u.email) {
        return Err(format!(
            "email {:?} of {} is not valid",
            u.email, u.username
        ));
    }
    for (name, v) in [("firstname", &u.firstname), ("lastname", &u.lastname)] {
        if v.trim().is_empty() || wire::has_tags(v) {
            return Err(format!(
                "{name} of {} must be non-blank text without tags",
                u.username
            ));
        }
    }
    if u.auth.is_empty()
        || !u
            .auth
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "auth {:?} of {} is not a plugin name",
            u.auth, u.username
        ));
    }
    if matches!(u.auth.as_str(), "manual" | "email") && u.password.is_none() && !u.createpassword {
        return Err(format!(
            "{}: internal auth needs a password or createpassword",
            u.username
        ));
    }
    Ok(())
}

fn invalid(function: &str, detail: String) -> MoodleError {
    MoodleError::InvalidInput {
        function: function.to_string(),
        detail,
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
