-- Read models of openvle-views, rebuilt at will from the log (`openvle-moodle replay`):
--   event_views     one row per deployed OpenVLE event: its view (projections::view::EventView) as JSON.
--   moodle_courses  the Moodle side of each event: recorded course, visibility, state, enrolments.
--   audit_index     one row per event of an OpenVLE event's two streams (event, moodle_sync): position and
--                   type, in position order by the primary key (`audit show`).
-- Every row carries the last log position folded into it. The tables below are kept identical to
-- adapters/views/sql/*_models.sql (replay builds its shadow tables from those and swaps them in).
--
-- views_checkpoint: how far the views have consumed the global log (advanced in the same transaction as the
-- rows it produced), with the view settings the views were computed with; the row `replay` is the lock of a
-- running replay (heartbeat in updated_at_ms).

CREATE TABLE IF NOT EXISTS event_views
(
    event_id      text PRIMARY KEY,
    view          text    NOT NULL,
    last_position integer NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS moodle_courses
(
    event_id      text PRIMARY KEY,
    course_id     integer,
    shortname     text,
    visible       integer,
    deleted       integer NOT NULL,
    state         text    NOT NULL,
    pending_steps integer NOT NULL,
    enrolled      integer NOT NULL,
    last_error    text,
    last_position integer NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit_index
(
    event_id   text    NOT NULL,
    position   integer NOT NULL,
    stream     text    NOT NULL,
    event_type text    NOT NULL,
    PRIMARY KEY (event_id, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS views_checkpoint
(
    name          text PRIMARY KEY,
    position      integer NOT NULL,
    settings      text,
    updated_at_ms integer NOT NULL
) STRICT;

INSERT INTO views_checkpoint (name, position, settings, updated_at_ms)
VALUES ('views', 0, NULL, 0)
ON CONFLICT (name) DO NOTHING;
