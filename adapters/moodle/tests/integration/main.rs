//! The integration tests of this crate, one binary (one link, one process start) with one
//! module per suite.

mod common;
mod contract;
mod hostile;
mod sim_duplication;
mod sim_faults;
