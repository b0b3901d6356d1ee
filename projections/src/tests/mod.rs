//! Tests across the saga's rules and the event view (the per-module tests sit beside them).

mod changes;
mod course_life;
mod identity;
mod rulebook;
pub(crate) mod runner;
