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
