//! The targets of the contract suite: the in-process simulator answering as each Moodle release
//! it knows (4.4 and 5.1), and a real Moodle when MOODLE_TEST_URL, MOODLE_TEST_TOKEN,
//! MOODLE_TEST_TEMPLATE_COURSE_ID and MOODLE_TEST_CATEGORY_ID are set (`. /var/tmp/moodle-lab/lab.env`
//! after `../shared/moodle-lab/setup.sh`). Simulator-only assertions check `t.sim` first.
//!
//! Whether the real half runs is decided here and only here ([`real_target`]):
//! * variables set: it runs, and a site that does not answer fails the test (it was asked for);
//! * variables missing and `OPENVLE_REQUIRE_MOODLE=1`: the test fails, naming what is missing;
//! * variables missing otherwise: skipped, said once on stderr with how to switch it on.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use moodle::{ClientOptions, MoodleClient, Secret};
use moodle_sim::{
    MoodleVersion, SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID,
};

/// Set to `1` to make a missing or unreachable real Moodle a failure instead of a skip.
pub const REQUIRE_VAR: &str = "OPENVLE_REQUIRE_MOODLE";

/// The variables naming the real Moodle.
pub const REAL_VARS: [&str; 4] = [
    "MOODLE_TEST_URL",
    "MOODLE_TEST_TOKEN",
    "MOODLE_TEST_TEMPLATE_COURSE_ID",
    "MOODLE_TEST_CATEGORY_ID",
];

const HOW_TO: &str = "set up the lab with `sudo ../shared/moodle-lab/setup.sh` (after a reboot: \
                      /var/tmp/moodle-lab/start.sh), then `. /var/tmp/moodle-lab/lab.env`";

pub struct Target {
    /// `simulator 4.4`, `simulator 5.1` or `real moodle`, for assertion messages.
    pub name: String,
    pub url: String,
    pub token: String,
    pub template: i64,
    pub category: i64,
    pub sim: Option<SimHandle>,
    /// The release the simulator answers as; `None` for a real site.
    pub version: Option<MoodleVersion>,
}

impl Target {
    pub fn client(&self) -> MoodleClient {
        self.client_with(ClientOptions::default())
    }

    pub fn client_with(&self, mut opts: ClientOptions) -> MoodleClient {
        opts.allow_insecure_http = true;
        MoodleClient::from_parts(&self.url, Secret::new(self.token.clone()), opts).expect("client")
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator target")
    }

    /// Whether this target answers as Moodle 5.1 (a real site is the 4.4 lab).
    pub fn is_5_1(&self) -> bool {
        self.version == Some(MoodleVersion::V5_1)
    }
}

pub async fn sim_target(cfg: SimConfig) -> Target {
    let version = cfg.moodle_version;
    let sim = Simulator::start_local(cfg).await.expect("simulator starts");
    Target {
        name: format!("simulator {version}"),
        url: sim.url(),
        token: sim.token(),
        template: TEMPLATE_COURSE_ID,
        category: EVENTS_CATEGORY_ID,
        sim: Some(sim),
        version: Some(version),
    }
}

/// The real Moodle named by [`REAL_VARS`], if any: the one place that decides whether the
/// real half runs, is skipped or fails (see the module docs). Panics with what to do when the
/// site was asked for and cannot be used.
pub fn real_target() -> Option<Target> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1");
    let missing: Vec<&str> = REAL_VARS.into_iter().filter(|k| var(k).is_none()).collect();
    if !missing.is_empty() {
        if required {
            panic!(
                "{REQUIRE_VAR}=1 but the real Moodle is not configured: {} unset; {HOW_TO}",
                missing.join(", ")
            );
        }
        static SKIPPED: Once = Once::new();
        SKIPPED.call_once(|| {
            // Straight to stderr: libtest captures eprintln! inside tests, and this must be seen.
            let _ = writeln!(
                std::io::stderr().lock(),
                "contract suite: the real-Moodle half is SKIPPED ({} unset); to run it, {HOW_TO}; \
                 {REQUIRE_VAR}=1 makes a missing site a failure",
                missing.join(", ")
            );
        });
        return None;
    }
    let id = |k: &str| -> i64 {
        let v = var(k).unwrap_or_default();
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{k}={v:?} is not a number; {HOW_TO}"))
    };
    let url = var("MOODLE_TEST_URL").unwrap_or_default();
    if let Err(why) = reachable(&url) {
        panic!("the real Moodle at MOODLE_TEST_URL={url} cannot be used: {why}; {HOW_TO}");
    }
    Some(Target {
        name: "real moodle".into(),
        url,
        token: var("MOODLE_TEST_TOKEN").unwrap_or_default(),
        template: id("MOODLE_TEST_TEMPLATE_COURSE_ID"),
        category: id("MOODLE_TEST_CATEGORY_ID"),
        sim: None,
        version: None,
    })
}

/// Whether something listens at the URL's host and port (asked once per test binary).
fn reachable(url: &str) -> Result<(), String> {
    static SEEN: OnceLock<Result<(), String>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let host = parsed.host_str().ok_or("no host in the URL")?;
        let port = parsed.port_or_known_default().ok_or("no port in the URL")?;
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{host} does not resolve ({e})"))?
            .collect();
        addrs
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(3)).ok())
            .map(|_| ())
            .ok_or_else(|| format!("nothing answers on {host}:{port}"))
    })
    .clone()
}

/// The simulator answering as each release, plus the real Moodle when configured.
pub async fn targets() -> Vec<Target> {
    let mut v = Vec::new();
    for moodle_version in MoodleVersion::ALL {
        v.push(
            sim_target(SimConfig {
                moodle_version,
                ..SimConfig::default()
            })
            .await,
        );
    }
    v.extend(real_target());
    v
}

/// A random suffix for names that must be unique on a shared real site.
pub fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
