//! Persisted read models of openvle-moodle, kept in step with the log, and the tools around
//! them: replay (rebuild from position 0) and the audit story.
//!
//! Tables (migration `0200_views`, next to the log):
//! - `event_views(event_id, view, last_position)`: each deployed OpenVLE event's view
//!   ([`projections::view::EventView`], folded from its `event` and `moodle_sync` streams).
//! - `moodle_courses(event_id, course_id, shortname, visible, deleted, state, pending_steps,
//!   enrolled, last_error, last_position)`: the Moodle side at a glance.
//! - `audit_index(event_id, position, stream, event_type)`: the positions of each OpenVLE
//!   event's two streams, for `audit show`.
//! - `views_checkpoint`: how far the views have consumed the log, and with which settings.
//!
//! The [`Projector`] follows the log from the checkpoint in pages and commits each page's rows
//! with the checkpoint in one transaction (durable, exactly-once for the views). [`replay`]
//! rebuilds everything aside and swaps it in; it never calls Moodle (this crate has no Moodle
//! client). [`story`] renders an event's history for a person. [`bench`] measures replay.

pub mod bench;
mod db;
mod error;
mod projector;
pub mod read;
mod replay;
pub mod story;

pub use bench::{bench_replay, peak_rss_bytes, seed_events, ReplayFigures};
pub use db::{ensure_schema, CHECKPOINT};
pub use error::ViewsError;
pub use projector::{catch_up, run_projector, Projector, ProjectorOptions};
pub use read::{event_story, MoodleCourse, ViewsSnapshot};
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
        assert_send(crate::db::take_replay_lock(&store, "x"));
        assert_send(crate::projector::write_page(
            &store,
            crate::db::LIVE,
            &crate::projector::PageOutput::default(),
        ));
        assert_send(crate::db::indexed_history_page(&store, "x", 1, 2, 3));
        assert_send(crate::db::recreate_shadow(&store));
        assert_send(crate::db::heartbeat(&store, "x"));
        assert_send(crate::db::release_replay_lock(&store, "x"));
        assert_send(crate::db::ensure_schema(&store));
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
        assert_send(crate::bench_replay(&store, 1));
        assert_send(crate::event_story(&store, "x", &Default::default(), |_| {
            Ok(())
        }));
    }
}
