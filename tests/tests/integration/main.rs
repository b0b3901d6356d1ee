//! The integration tests of this crate, one binary (one link, one process start) with one
//! module per suite.

mod api_audit;
mod api_auth;
mod api_course;
mod api_errors;
mod api_events;
mod api_hardening;
mod api_idempotency;
mod api_lists;
mod api_ops;
mod api_participants;
mod api_recovery;
mod api_retry;
mod course_shape;
mod fault_matrix;
mod fd_limit;
mod hostile_api;
mod identity;
mod kill;
mod load;
mod logs;
mod model;
mod moodle_e2e;
mod moodle_hostile;
mod pacing;
mod packaging;
mod preflight;
mod read_only;
mod secrets;
mod serve_health;
mod views_replay;
mod webhooks;
