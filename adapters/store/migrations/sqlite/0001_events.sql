-- The one log of the three aggregates (environment, event, moodle_sync).
--
-- Columns and composite PRIMARY KEY are sqlite-es 0.5's `events` table unchanged: sqlite-es inserts and
-- selects exactly these seven columns, and a duplicate (aggregate_type, aggregate_id, sequence) raising
-- SQLite error 1555 is how it reports a concurrent append as AggregateConflict. Making `position` the
-- primary key would turn conflicts into error 2067 (UnexpectedError), so it is a unique index instead.
--
-- Added columns:
--   position     global, commit-ordered: SQLite has one writer at a time, so max(position)+1 taken
--                inside the writing transaction (trigger below) follows commit order.
--   recorded_at  ISO-8601 UTC with milliseconds, set when the row is written.
--
-- There is deliberately no `snapshots` table: the engine uses cqrs-es event-store mode only (0.5.0's
-- aggregate and snapshot modes apply new events twice).
CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        text                          NOT NULL,
    metadata       text                          NOT NULL,
    position       integer,
    recorded_at    text                          NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

-- The global log reader (`WHERE position > ? ORDER BY position LIMIT ?`) and max(position) use this.
CREATE UNIQUE INDEX events_position ON events (position);
-- One OpenVLE event's streams (`event` and `moodle_sync` share the aggregate id), in log order.
CREATE INDEX events_aggregate_id_position ON events (aggregate_id, position);
-- Audit page filtered by event type, in log order.
CREATE INDEX events_event_type_position ON events (event_type, position);

CREATE TRIGGER events_assign_position
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN NEW.position IS NULL
BEGIN
    UPDATE events
       SET position = (SELECT COALESCE(MAX(position), 0) + 1 FROM events)
     WHERE rowid = NEW.rowid;
END;
