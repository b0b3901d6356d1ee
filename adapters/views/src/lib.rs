//! Persisted read models of openvle-moodle, kept in step with the log, and the tools around
//! them: replay (rebuild from position 0) and the audit story.
//!
//! Tables (migrations `0200_views`, `0210_views_fold`, next to the log):
//! - `event_views(event_id, view, fold, last_position)`: each deployed OpenVLE event's view
//!   ([`projections::view::EventView`], folded from its `event` and `moodle_sync` streams) and
//!   the fold behind it at `last_position`. The API answers from the fold plus the tail of the
//!   log after it ([`read::current_fold`]); the Moodle side at a glance ([`MoodleCourse`]) is
//!   derived from the row.
//! - `views_checkpoint`: how far the views have consumed the log, and with which settings.
//!
//! The [`Projector`] follows the log from the checkpoint in pages and commits each page's rows
//! with the checkpoint in one transaction (durable, exactly-once for the views). [`replay`]
//! rebuilds everything aside and swaps it in; it never calls Moodle (this crate has no Moodle
//! client). [`story`] renders an event's history for a person, read from the log's own index.
//!
//!
//! Modules, each used by those above it: `fold` (log rows into view rows) and `page` (writing
//! them), `follow` (the live loop), `projector` and `replay` on top; `db` and `lock` for the
//! tables.

mod db;
mod error;
mod fold;
mod follow;
pub mod list;
mod lock;
mod page;
mod projector;
pub mod read;
mod replay;
pub mod story;

pub use db::{check_schema, CHECKPOINT};
pub use error::ViewsError;
pub use projector::{catch_up, run_projector, Projector, ProjectorOptions};
pub use read::{checkpoint, current_fold, event_story, MoodleCourse, ViewsSnapshot};
pub use replay::{replay, ReplayOptions, ReplayPhase, ReplayProgress, ReplayReport};

/// The public futures must be `Send` (they run in spawned tasks).
#[cfg(test)]
#[allow(dead_code)]
mod send_checks {
    use projections::saga::SagaSettings;
    use store::Store;

    fn assert_send<T: Send>(_: T) {}

    fn futures_are_send(store: Store, settings: SagaSettings) {
        assert_send(crate::db::read_checkpoint(&store));
        assert_send(crate::db::history_before(&store, "x", 1));
        assert_send(crate::db::swap_in_shadow(&store, 1, &settings));
        assert_send(crate::lock::take_replay_lock(&store, "x"));
        assert_send(crate::page::write_page(
            &store,
            crate::db::LIVE,
            &crate::fold::PageOutput::default(),
        ));
        assert_send(crate::db::recreate_shadow(&store));
        assert_send(crate::lock::heartbeat(&store, "x"));
        assert_send(crate::lock::release_replay_lock(&store, "x"));
        assert_send(crate::db::check_schema(&store));
        assert_send(crate::read::current_fold(&store, "x"));
        assert_send(crate::read::snapshot(&store));
        assert_send(crate::read::clear(&store));
        assert_send(crate::read::moodle_course(&store, "x"));
        assert_send(crate::read::event_view(&store, "x"));
        assert_send(crate::catch_up(&store, &settings));
        assert_send(crate::replay(
            &store,
            &settings,
            &crate::ReplayOptions::default(),
            |_| {},
        ));
        assert_send(crate::run_projector(
            store.clone(),
            settings,
            Default::default(),
            async {},
        ));
        assert_send(crate::event_story(&store, "x", &Default::default(), |_| {
            Ok(())
        }));
    }
}
