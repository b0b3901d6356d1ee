//! Moodle Web Services (REST) client and preflight check.
//!
//! * [`MoodleClient`]: one typed async method per web-service function the engine uses. The
//!   token travels only in the POST body; errors are typed ([`MoodleError`]) and classified
//!   (transient or not, outcome known or not, what was refused: [`Refusal`]) by Moodle's
//!   `errorcode` and the function called, never by its localised message or its exception class,
//!   so that Moodle 4.4 and 5.1 read the same.
//! * [`MoodleSettings`]: the `MOODLE_*` configuration.
//! * [`check()`]: the preflight behind `openvle-moodle moodle check` ([`check_with`]), and its
//!   provisioning round behind `moodle check --probe` ([`check_and_probe`]).
//!
//! The Moodle simulator the tests run it against is its own crate (`openvle-moodle-sim`, lib
//! `moodle_sim`), with its own implementation of Moodle's rules: see its docs for why.
//!
//! ```
//! use moodle_sim::{SimConfig, Simulator, EVENTS_CATEGORY_ID, TEMPLATE_COURSE_ID};
//! use moodle::{ClientOptions, DuplicateCourse, MoodleClient, Secret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sim = Simulator::start_local(SimConfig::default()).await.unwrap();
//! let opts = ClientOptions { allow_insecure_http: true, ..Default::default() };
//! let client = MoodleClient::from_parts(&sim.url(), Secret::new(sim.token()), opts).unwrap();
//! let course = client
//!     .duplicate_course(&DuplicateCourse {
//!         template_id: TEMPLATE_COURSE_ID,
//!         fullname: "Spring 2027 Section A".into(),
//!         shortname: "S27-A".into(),
//!         category_id: EVENTS_CATEGORY_ID,
//!         visible: true,
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(course.id, 3);
//! assert_eq!(sim.call_counts()["core_course_duplicate_course"], 1);
//! sim.shutdown().await;
//! # }
//! ```

pub mod check;
pub mod client;
pub mod config;
pub mod error;
pub mod secret;
pub mod targets;
pub mod types;
pub mod wire;

pub use check::{
    check, check_and_probe, check_for, check_with, CheckReport, Finding, ProbeOptions, ProbeReport,
    ProbeStep, Status, REQUIRED_FUNCTIONS,
};
pub use client::{ClientOptions, MoodleClient, MAX_ENROLMENTS_PER_CALL, MAX_USERS_PER_CALL};
pub use config::{ConfigError, MoodleSettings, RemovalMode, UserMatchField};
pub use error::{ErrorClass, MoodleError, Refusal};
pub use secret::Secret;
pub use targets::Target;
pub use types::*;
pub use wire::Form;
