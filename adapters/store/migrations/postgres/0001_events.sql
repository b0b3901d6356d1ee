-- The one log of the three aggregates (environment, event, moodle_sync).
--
-- Columns, types (payload/metadata `json`) and the composite PRIMARY KEY are postgres-es 0.5's `events`
-- table unchanged: postgres-es inserts and selects exactly these seven columns, and a unique violation
-- (23505) on the primary key is how it reports a concurrent append as AggregateConflict.
--
-- Added columns:
--   position     global, commit-ordered, gap-safe. An identity value is *drawn* at insert but *visible*
--                at commit, so two concurrent appends could become visible out of order and a reader at
--                `position > checkpoint` would skip the late one for ever. The statement-level BEFORE
--                INSERT trigger below takes a transaction-scoped advisory lock before any identity value
--                is drawn: appends serialise, positions follow commit order, and a reader never sees N+1
--                before N is committed or rolled back (a rollback leaves a permanent gap, harmless).
--   recorded_at  clock_timestamp() of the insert (not the transaction start).
--
-- There is deliberately no `snapshots` table: the engine uses cqrs-es event-store mode only.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    position       bigint GENERATED ALWAYS AS IDENTITY,
    recorded_at    timestamptz                  NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- The global log reader (`WHERE position > $1 ORDER BY position LIMIT $2`) and max(position) use this.
CREATE UNIQUE INDEX events_position ON events (position);
-- One OpenVLE event's streams (`event` and `moodle_sync` share the aggregate id), in log order.
CREATE INDEX events_aggregate_id_position ON events (aggregate_id, position);
-- Audit page filtered by event type, in log order.
CREATE INDEX events_event_type_position ON events (event_type, position);

-- The key must match store::APPEND_LOCK_KEY.
CREATE FUNCTION openvle_serialize_appends() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_advisory_xact_lock(8675309001);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_serialize_appends
    BEFORE INSERT ON events
    FOR EACH STATEMENT
EXECUTE FUNCTION openvle_serialize_appends();
