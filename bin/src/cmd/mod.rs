//! One module per family of subcommands.

pub mod demo;
pub mod ops;
pub mod serve;
pub mod sim;
