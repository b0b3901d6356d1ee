//! A Moodle simulator: the REST endpoint answering like the real 4.4 site of
//! `shared/moodle/observed-4.4.md` (and the lab's), or like the 5.1 site of `observed-5.1.md`
//! ([`SimConfig::moodle_version`]), plus fault injection and operator helpers for tests.
//!
//! Start it in-process with [`Simulator::start`] (tests) or run it standalone with [`serve`]
//! (`openvle-moodle moodle-sim`). Every helper on [`SimHandle`] is also a JSON endpoint under
//! `/_sim/` (`GET /_sim/state`, `POST /_sim/wipe`, `GET|PUT /_sim/faults`, `POST /_sim/faults/queue`,
//! `GET|DELETE /_sim/calls`, `DELETE /_sim/courses/{id}`, `POST /_sim/courses/{id}/visible`
//! `{"visible":bool}`, `POST /_sim/courses/{id}/manual_enrol` `{"enabled":bool}`,
//! `POST /_sim/unenrol` `{"user_id","course_id"}`, `POST /_sim/users` `{"username","email",...}`)
//! so a test can drive a simulator running in another process. The admin endpoints need no token:
//! listen on loopback only.
//!
//! Seed ids are documented in [`state`]: template course 2 (`TEMPLATE-101`) in category 1
//! "Templates", event category 2 "Events", and 3 "Runs", 4 "Archive" (the lab's ids for those
//! two, so that a contract test uses the same ids on both).
//!
//! Layout: `functions/` holds what each web-service function does to the site's data (one file
//! per area, and the duplication's phases), `server/` the HTTP side (REST, wire formats, the
//! admin endpoints), `params.rs` PHP's request parsing, [`rules`] Moodle's parameter rules
//! (usernames, emails, tags, release strings), `errors.rs` Moodle's exception bodies and
//! `version.rs` what differs between the releases answered as.
//!
//! The crate depends on no part of the client (`openvle-moodle-ws`): it stands for Moodle, so
//! its rules are written from Moodle's code and the lab site's answers, and a client rule that
//! differs from Moodle's fails the contract suite instead of being copied here. A duplication runs in the phases a real one goes through (no course
//! during the backup, then a hidden skeleton, then the restore under the template's names, then
//! the requested names): the duplication latency is split between them.

mod errors;
pub mod faults;
mod functions;
mod params;
pub mod rules;
mod server;
pub mod state;
mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::SeedableRng;

pub use errors::WsError;
pub use faults::{Faults, LostKind, QueuedFault, ScriptedFault, TransientKind};
pub use functions::FUNCTIONS;
pub use server::{CallRecord, DirectUser};
pub use state::{
    SimCategory, SimCourse, SimEnrolment, SimState, SimUser, ARCHIVE_CATEGORY_ID,
    EVENTS_CATEGORY_ID, RUNS_CATEGORY_ID, TEMPLATES_CATEGORY_ID, TEMPLATE_COURSE_ID,
};
pub use version::{MoodleVersion, UnknownVersion};

/// Simulator configuration. `Debug` leaves the token out.
#[derive(Clone)]
pub struct SimConfig {
    /// The only token accepted.
    pub token: String,
    /// Seed of the fault-injection RNG.
    pub seed: u64,
    /// JSON file loaded at start (if present) and written after every change.
    pub persist_path: Option<PathBuf>,
    /// The Moodle release answered as: its error bodies and its site information.
    pub moodle_version: MoodleVersion,
    /// The `release` reported instead of the version's own (e.g. `3.9` for a site too old);
    /// `None`: the observed one of [`SimConfig::moodle_version`].
    pub release: Option<String>,
    /// Functions left out of the token's service (answer `accessexception`).
    pub missing_functions: Vec<String>,
    /// The token's user is a site administrator (`userissiteadmin` of the site information);
    /// nothing else changes (the simulator checks no capabilities).
    pub site_admin: bool,
    /// Initial faults and `max_input_vars`.
    pub faults: Faults,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("token", &"[redacted]")
            .field("seed", &self.seed)
            .field("persist_path", &self.persist_path)
            .field("moodle_version", &self.moodle_version)
            .field("release", &self.release)
            .field("missing_functions", &self.missing_functions)
            .field("site_admin", &self.site_admin)
            .field("faults", &self.faults)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "sim-token".into(),
            seed: 1,
            persist_path: None,
            moodle_version: MoodleVersion::default(),
            release: None,
            missing_functions: Vec::new(),
            site_admin: false,
            faults: Faults::default(),
        }
    }
}

/// Simulator failures (start-up and persistence).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("simulator I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The persistence file could not be read.
    #[error("simulator state file {path}: {detail}")]
    Persist {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

pub(crate) struct Shared {
    cfg: SimConfig,
    url: String,
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    state: SimState,
    faults: Faults,
    rng: StdRng,
    calls: Vec<CallRecord>,
    counts: BTreeMap<String, u64>,
    seq: u64,
    /// Duplicated courses whose restore has not started (no enrolment instance yet).
    building: BTreeSet<i64>,
    /// Courses with a duplication's backup file on disk, and how many (see `functions::duplicate`).
    backups: BTreeMap<i64, u32>,
}

const MAX_LOG: usize = 100_000;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn persist(&self, sh: &Shared) {
        let Some(path) = &sh.cfg.persist_path else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let res = serde_json::to_vec_pretty(&self.state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            tracing::warn!(path = %path.display(), "simulator could not save its state: {e}");
        }
    }

    fn log(&mut self, record: CallRecord) {
        *self.counts.entry(record.function.clone()).or_default() += 1;
        if self.calls.len() >= MAX_LOG {
            self.calls.remove(0);
        }
        self.calls.push(record);
    }
}

/// Entry point of the simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and serves on a tokio task.
    pub async fn start(addr: SocketAddr, cfg: SimConfig) -> Result<SimHandle, SimError> {
        let state = match &cfg.persist_path {
            Some(p) if p.exists() => {
                let err = |detail: String| SimError::Persist {
                    path: p.display().to_string(),
                    detail,
                };
                let bytes = std::fs::read(p).map_err(|e| err(e.to_string()))?;
                serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?
            }
            _ => SimState::default(),
        };
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            url: format!("http://{local}"),
            inner: Mutex::new(Inner {
                state,
                faults: cfg.faults.clone(),
                rng: StdRng::seed_from_u64(cfg.seed),
                calls: Vec::new(),
                counts: BTreeMap::new(),
                seq: 0,
                building: BTreeSet::new(),
                backups: BTreeMap::new(),
            }),
            cfg,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("moodle simulator stopped: {e}");
            }
        });
        tracing::info!(url = %shared.url, "moodle simulator listening");
        Ok(SimHandle {
            shared,
            addr: local,
            stop: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        })
    }

    /// Starts on `127.0.0.1` with a free port.
    pub async fn start_local(cfg: SimConfig) -> Result<SimHandle, SimError> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await
    }
}

/// Runs a simulator until Ctrl-C (the `moodle-sim` subcommand).
pub async fn serve(addr: SocketAddr, cfg: SimConfig) -> Result<(), SimError> {
    let handle = Simulator::start(addr, cfg).await?;
    println!(
        "Moodle simulator listening on {} (REST endpoint {}/webservice/rest/server.php)",
        handle.url(),
        handle.url()
    );
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

/// A running simulator. Dropping it leaves the server running until the runtime ends; call
/// [`SimHandle::shutdown`] to stop it.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("url", &self.shared.url)
            .finish()
    }
}

impl SimHandle {
    /// Base URL (the wwwroot), e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accepted token.
    pub fn token(&self) -> String {
        self.shared.cfg.token.clone()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(&self) {
        let tx = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Current faults.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Changes the faults in place, e.g. `h.update_faults(|f| f.latency_ms = 50)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.lock().faults);
    }

    /// Queues a fault for the next call of `function` (`None` = any function).
    pub fn push_fault(&self, function: Option<&str>, fault: ScriptedFault) {
        self.shared.lock().faults.queue.push(QueuedFault {
            function: function.map(str::to_string),
            fault,
        });
    }

    /// A copy of the site's data.
    pub fn snapshot(&self) -> SimState {
        self.shared.lock().state.clone()
    }

    /// Changes the site's data directly (operator helper; persisted).
    pub fn with_state<T>(&self, change: impl FnOnce(&mut SimState) -> T) -> T {
        let mut g = self.shared.lock();
        let r = change(&mut g.state);
        g.persist(&self.shared);
        r
    }

    /// Shows or hides a course, as a teacher would in Moodle. False if the course does not exist.
    pub fn set_course_visible(&self, course_id: i64, visible: bool) -> bool {
        self.with_state(|s| {
            s.courses
                .get_mut(&course_id)
                .map(|c| c.visible = visible)
                .is_some()
        })
    }

    /// Enables or disables a course's manual enrolment instance.
    pub fn set_manual_enrol(&self, course_id: i64, enabled: bool) -> bool {
        self.with_state(|s| {
            s.courses
                .get_mut(&course_id)
                .map(|c| c.manual_enrol = enabled)
                .is_some()
        })
    }

    /// Removes an enrolment, as an operator would in Moodle.
    pub fn unenrol_directly(&self, user_id: i64, course_id: i64) {
        self.with_state(|s| s.unenrol(user_id, course_id));
    }

    /// Deletes a course, as an operator would in Moodle. False if it did not exist.
    pub fn delete_course_directly(&self, course_id: i64) -> bool {
        self.with_state(|s| s.delete_course(course_id))
    }

    /// Creates a user without Moodle's checks (e.g. a pre-existing account with an odd email case).
    pub fn create_user_directly(
        &self,
        username: &str,
        email: &str,
        firstname: &str,
        lastname: &str,
    ) -> SimUser {
        self.with_state(|s| s.add_user(username, email, firstname, lastname, "manual"))
    }

    /// A brand-new Moodle: only the seed remains; new ids continue above the old ones.
    pub fn wipe(&self) {
        self.with_state(|s| *s = s.wiped());
    }

    /// The call log, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    /// Calls per function since the last reset.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counts.clone()
    }

    /// Clears the call log and counters.
    pub fn reset_calls(&self) {
        let mut g = self.shared.lock();
        g.calls.clear();
        g.counts.clear();
    }
}
