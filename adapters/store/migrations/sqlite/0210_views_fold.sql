-- The read models earn their keep (docs/architecture.md, "Read models"):
--   event_views.fold  the projections::view::EventFold behind the row's view, as JSON text, folded up to
--                     last_position. The API answers from it plus the event's events after last_position,
--                     rendered with its own settings: as fresh as the log without folding all of it.
--                     Text, not jsonb: an opaque checkpoint of this binary, never queried in SQL, read back
--                     whole on every GET (no conversion on the way out).
--   moodle_courses    dropped: every column is the view's or the fold's; nothing read it.
--   audit_index       dropped: it repeated the log's own index events (aggregate_id, position), which the
--                     story now reads directly.
-- The checkpoint's settings are cleared so the projector rebuilds the views (with their folds) by a replay
-- on its next pass; until then the API folds the log for rows without a fold, as it did before.

ALTER TABLE event_views ADD COLUMN fold text;

DROP TABLE IF EXISTS moodle_courses;
DROP TABLE IF EXISTS audit_index;
-- Shadow copies left by an interrupted replay (made by the previous binary, without the new column).
DROP TABLE IF EXISTS event_views_rebuild;
DROP TABLE IF EXISTS moodle_courses_rebuild;
DROP TABLE IF EXISTS audit_index_rebuild;

UPDATE views_checkpoint SET settings = NULL WHERE name = 'views';
