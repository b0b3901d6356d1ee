//! The target of the contract suite: the in-process simulator always, and a real Moodle when
//! MOODLE_TEST_URL, MOODLE_TEST_TOKEN, MOODLE_TEST_TEMPLATE_COURSE_ID and MOODLE_TEST_CATEGORY_ID
//! are set. Simulator-only assertions check `t.sim` first.
#![allow(dead_code)]

use moodle::sim::{SimConfig, SimHandle, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
use moodle::{ClientOptions, MoodleClient, Secret};

pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub token: String,
    pub template: i64,
    pub category: i64,
    pub sim: Option<SimHandle>,
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
}

pub async fn sim_target(cfg: SimConfig) -> Target {
    let sim = Simulator::start_local(cfg).await.expect("simulator starts");
    Target {
        name: "simulator",
        url: sim.url(),
        token: sim.token(),
        template: TEMPLATE_COURSE_ID,
        category: EVENTS_CATEGORY_ID,
        sim: Some(sim),
    }
}

pub fn real_target() -> Option<Target> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(Target {
        name: "real moodle",
        url: var("MOODLE_TEST_URL")?,
        token: var("MOODLE_TEST_TOKEN")?,
        template: var("MOODLE_TEST_TEMPLATE_COURSE_ID")?.parse().ok()?,
        category: var("MOODLE_TEST_CATEGORY_ID")?.parse().ok()?,
        sim: None,
    })
}

/// The simulator, plus the real Moodle when configured.
pub async fn targets() -> Vec<Target> {
    let mut v = vec![sim_target(SimConfig::default()).await];
    v.extend(real_target());
    v
}

/// A random suffix for names that must be unique on a shared real site.
pub fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
