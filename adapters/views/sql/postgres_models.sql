CREATE TABLE IF NOT EXISTS event_views
(
    event_id      text PRIMARY KEY,
    view          jsonb  NOT NULL,
    last_position bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS moodle_courses
(
    event_id      text PRIMARY KEY,
    course_id     bigint,
    shortname     text,
    visible       boolean,
    deleted       boolean NOT NULL,
    state         text    NOT NULL,
    pending_steps bigint  NOT NULL,
    enrolled      bigint  NOT NULL,
    last_error    text,
    last_position bigint  NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_index
(
    event_id   text   NOT NULL,
    position   bigint NOT NULL,
    stream     text   NOT NULL,
    event_type text   NOT NULL,
    PRIMARY KEY (event_id, position)
);
