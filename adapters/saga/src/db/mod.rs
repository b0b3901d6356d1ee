//! The saga's own tables: the reader's checkpoint and one work row per OpenVLE event.
//!
//! Every statement is written once with `$n` placeholders and run on whichever pool the store
//! holds ([`store::with_pool!`]); the one dialect difference, row locking when claiming, comes
//! from [`store::Backend`]. The tables are made by the store's migrations
//! (`adapters/store/migrations/*/0100_saga.sql`), never here: [`ensure_schema`] only checks.
//!
//! - [`checkpoint`]: the reader's position, the work rows it derives, the disabled marker;
//! - [`work`]: claims, leases and how a claim ends; the times they compare are given as `now`
//!   (see [`crate::clock`]);
//! - [`status`]: counts and rows as status and metrics show them.

mod checkpoint;
mod status;
mod work;

use store::Store;

use crate::SagaError;

pub use crate::clock::now_ms;
pub use checkpoint::{
    advance, checkpoint, clear_disabled_marker, disabled_marker, mark_disabled, vle_events, Wanted,
    CHECKPOINT,
};
pub use status::{counts, failed_rows, work_state, WorkState};
pub use work::{
    claim, claim_event, release, release_all, renew, renew_all, requeue, touch, Claim, Release,
};

/// Every column the saga reads or writes, per table: selecting them all (no row) fails when a
/// table or a column is missing.
const EXPECTED: [(&str, &str); 2] = [
    ("saga_checkpoints", "name, position, updated_at_ms"),
    (
        "saga_work",
        "event_id, wanted_position, done_position, parked, state, reason, next_attempt_at, \
         attempts, claimed_by, lease_until, updated_at_ms",
    ),
];

/// Checks that the saga's tables are there, as the migrations make them. Creates nothing: the
/// migrations are the only path to the schema, so a database they did not reach is an error
/// that says so instead of a schema the code made up.
pub async fn ensure_schema(store: &Store) -> Result<(), SagaError> {
    for (table, columns) in EXPECTED {
        if let Some(e) = store.table_problem(table, columns).await? {
            return Err(SagaError::Schema(format!(
                "table {table} is missing or lacks a column ({e}); apply the migrations \
                 (`openvle-moodle migrate`, or connect with migrations on)"
            )));
        }
    }
    Ok(())
}
