-- The Moodle saga's delivery tables (owned by the openvle-saga crate; the saga also creates them
-- with IF NOT EXISTS at start, so the statements must stay idempotent).
--
-- saga_checkpoints: how far the saga's reader has consumed the global log. It advances in the same
--   transaction as the work rows it derived, so a crash never loses a domain event.
-- saga_work: one row per OpenVLE event with work to do. A row is pending while
--   done_position < wanted_position and it is not parked; workers claim it with a lease
--   (claimed_by, lease_until) so one OpenVLE event has one active processor at a time.
--   Times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS saga_checkpoints
(
    name          text PRIMARY KEY,
    position      integer NOT NULL,
    updated_at_ms integer NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS saga_work
(
    event_id        text PRIMARY KEY,
    wanted_position integer NOT NULL,
    done_position   integer NOT NULL DEFAULT 0,
    parked          integer NOT NULL DEFAULT 0,
    state           text    NOT NULL DEFAULT 'pending',
    reason          text,
    next_attempt_at integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      text,
    lease_until     integer NOT NULL DEFAULT 0,
    updated_at_ms   integer NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX IF NOT EXISTS saga_work_ready ON saga_work (next_attempt_at)
    WHERE done_position < wanted_position AND parked = 0;
CREATE INDEX IF NOT EXISTS saga_work_state ON saga_work (state);
