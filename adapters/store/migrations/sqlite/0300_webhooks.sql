-- The webhooks' outbox (owned by the openvle-webhooks crate; docs/webhooks.md).
--
-- webhook_checkpoint: how far the outbox's reader has consumed the global log. It advances in the
--   same transaction as the messages it derived (compare-and-set on position), so a crash never
--   loses a change and never enqueues one twice. Its own row, apart from the saga's: the webhooks
--   never hold the saga up.
-- webhook_event_state: the last Moodle state enqueued for each OpenVLE event (what the next state
--   is compared with), with the position it was seen at.
-- webhook_outbox: one row per message. `id` is the message id sent as `webhook-id` on every
--   attempt; `body` the exact bytes signed and sent. Per event, messages go out in (position,
--   ord) order: only the earliest `pending` one of an event is sent. status: pending, delivered,
--   dead. A sender holds a message with a lease (claimed_by, claimed_until). Times are
--   milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS webhook_checkpoint
(
    name          text PRIMARY KEY,
    position      integer NOT NULL,
    updated_at_ms integer NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS webhook_event_state
(
    event_id text PRIMARY KEY,
    state    text   NOT NULL,
    position integer NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS webhook_outbox
(
    id              text PRIMARY KEY,
    event_id        text   NOT NULL,
    position        integer NOT NULL,
    ord             integer NOT NULL,
    kind            text   NOT NULL,
    body            text   NOT NULL,
    created_at_ms   integer NOT NULL,
    status          text   NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at integer NOT NULL DEFAULT 0,
    claimed_by      text,
    claimed_until   integer NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at_ms integer,
    updated_at_ms   integer NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS webhook_outbox_order ON webhook_outbox (event_id, position, ord);
CREATE INDEX IF NOT EXISTS webhook_outbox_pending ON webhook_outbox (position, ord)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_outbox_status ON webhook_outbox (status);
