-- Idempotency-Key of the HTTP contract: the first answer to (actor, key) is kept and replayed.
-- status/body are NULL while the first request is in flight.
CREATE TABLE idempotency_keys
(
    actor           text   NOT NULL,
    key             text   NOT NULL,
    request_hash    text   NOT NULL,
    status          integer,
    body            text,
    started_at_ms   bigint NOT NULL,
    completed_at_ms bigint,
    PRIMARY KEY (actor, key)
);
