//! One module per family of subcommands.

pub mod audit_show;
pub mod demo;
pub mod generate;
pub mod ops;
pub mod reconcile;
pub mod replay;
pub mod serve;
pub mod sim;
pub mod webhooks;
