//! The integration tests of this crate, one binary (one link, one process start) with one
//! module per suite.

mod common;
mod duplication;
mod reconcile;
mod saga_sim;
mod secrets;
