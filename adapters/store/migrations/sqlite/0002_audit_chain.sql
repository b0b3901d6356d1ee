-- Hash chain over the log: hash(n) = sha256(prev_hash || canonical(event at position n)).
-- `event_id` (deterministic UUIDv5 of type/id/sequence) lets verify tell a reordered log from an edited one.
CREATE TABLE audit_chain
(
    position  integer PRIMARY KEY,
    event_id  text    NOT NULL,
    prev_hash text    NOT NULL,
    hash      text    NOT NULL,
    sealed_at text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
