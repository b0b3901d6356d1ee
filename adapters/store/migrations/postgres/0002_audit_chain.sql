-- Hash chain over the log: hash(n) = sha256(prev_hash || canonical(event at position n)).
-- `event_id` (deterministic UUIDv5 of type/id/sequence) lets verify tell a reordered log from an edited one.
CREATE TABLE audit_chain
(
    position  bigint PRIMARY KEY,
    event_id  text        NOT NULL,
    prev_hash text        NOT NULL,
    hash      text        NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
