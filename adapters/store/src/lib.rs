//! The event store of openvle-moodle: one log for the three aggregates, on SQLite (default) or
//! PostgreSQL, behind cqrs-es 0.5 in event-store mode.
//!
//! What this crate adds to sqlite-es / postgres-es, and why:
//! - **A global, commit-ordered `position`.** cqrs-es identifies an event only by (aggregate type,
//!   id, sequence) and its `stream_all_events` orders by sequence, not commit; the saga, the
//!   audit log and projections need one order of everything. PostgreSQL: identity column drawn
//!   after a transaction-scoped advisory lock taken by a statement-level BEFORE INSERT trigger,
//!   so positions become visible in order and a reader never skips a late committer. SQLite: one
//!   writer at a time, an AFTER INSERT trigger assigns `max(position)+1`.
//! - **`recorded_at`** and metadata (`command_id`, `idempotency_key`, `actor`, `correlation_id`,
//!   `causation_id`) on every event; `event_id` is deterministic
//!   ([`domain::event_id_of`]), computed on read.
//! - **Conflict retries.** `AggregateConflict` is what both stores report when two commands race
//!   on one aggregate; nothing in cqrs-es retries it. [`Store::execute`] reloads and re-handles.
//! - **An audit hash chain** ([`Store::seal`], [`Store::verify`]) that detects edited, deleted,
//!   reordered and inserted events.
//! - **Idempotency keys** for the HTTP contract.
//! - **One SQL convention** ([`sql`]): statements written once with `$n` placeholders, run on
//!   either pool by [`with_pool!`], a dialect ([`Backend`]) for what really differs; crates with
//!   tables next to the log (saga, views) use the same.
//! - **Migrations** (sqlx), the only path to the schema: neither store crate ships one, and no
//!   crate creates tables at run time (they check). Files live in `migrations/sqlite` and
//!   `migrations/postgres`, 0001–0003 here; the saga's from 0100, the views' from 0200,
//!   the webhooks' outbox from 0300.

mod audit;
mod error;
mod execute;
mod export;
mod idempotency;
mod model;
mod read;
mod read_only;
pub mod sql;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use audit::{canonical_event, canonical_json, chain_hash, GENESIS_HASH};
pub use error::{BoxError, CommandError, StoreError};
pub use export::ExportSummary;
pub use model::{
    meta_keys, Appended, BreakKind, ChainBreak, CommandMeta, IdempotencyState, LogQuery,
    StoredEvent, VerifyReport,
};
pub use read::{LogPager, DEFAULT_PAGE, MAX_PAGE};
pub use sql::{event_from_row, EventRow, EVENT_COLUMNS};
pub use store::{
    Backend, DbPool, Store, StoreOptions, APPEND_LOCK_KEY, DEFAULT_DATABASE_URL, SEAL_LOCK_KEY,
};

/// Re-exported so dependants use the exact sqlx the store was built with.
pub use sqlx;
