//! The pure heart of openvle-moodle: aggregates, commands, events and the rules between them.
//!
//! Nothing in this crate does I/O. Aggregates are folded from their events and validate
//! commands against that state; the adapters load, store and dispatch them through cqrs-es.
//!
//! Three aggregates share one event log:
//! - [`environment::Environment`] (`environment` streams): an OpenVLE environment and the Moodle
//!   template course it may be linked to.
//! - [`event::VleEvent`] (`event` streams): an OpenVLE event (a course run, a lab, a training) and
//!   its participants, through Deployed, ParticipantAdded, ParticipantRemoved, Ended and Deleted.
//! - [`moodle_sync::MoodleSync`] (`moodle_sync` streams, one per OpenVLE event, same id): what the
//!   Moodle saga did for that event, recorded as facts (course duplicated, user created, …).

pub mod course;
pub mod environment;
pub mod error;
pub mod event;
pub mod ids;
pub mod moodle_sync;
pub mod participant;
pub mod settings;

pub use error::DomainError;
pub use ids::event_id_of;
