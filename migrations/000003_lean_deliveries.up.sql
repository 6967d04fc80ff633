-- A leaner deliveries table for a long history, and payloads kept byte for
-- byte.
--
-- final_state is the state a delivery ended in, NULL while it is queued
-- (pending or sending). It is computed by PostgreSQL from state, so every
-- writer, an older relay included, keeps it right. The queue's partial
-- indexes and the audit's state index use it instead of state: claiming
-- (pending -> sending) and retrying (sending -> pending) leave it NULL,
-- and as no index mentions state any more, those updates are HOT (no index
-- is written) when the page has room, which the fillfactor leaves.
-- Adding a stored generated column rewrites the table once, under an
-- exclusive lock (see the README's upgrade notes for how long).
--
-- alertname, group_status and receiver describe a delivery for the audit,
-- copied from the payload when it is recorded (for CI sources, their
-- equivalents: the pipeline's name, its outcome, the event kind).
-- alertname is indexed for the audit's filter; group status (two values)
-- and receiver (in practice one per route, and route is indexed) would
-- gain nothing from an index of their own. Deliveries recorded before
-- this migration have them empty.
--
-- notifications.body is the request body exactly as received; payload
-- (jsonb, which reorders keys and drops duplicates) stays for rows
-- recorded before, and for an older relay still running beside this one.
BEGIN;

DROP INDEX notifications_dedup_key_idx;
DROP INDEX deliveries_state_idx;
DROP INDEX deliveries_queue_idx;
DROP INDEX deliveries_resolved_idx;

ALTER TABLE deliveries SET (fillfactor = 85);
ALTER TABLE deliveries
    ADD COLUMN final_state text GENERATED ALWAYS AS (
        CASE WHEN state IN ('pending', 'sending') THEN NULL ELSE state END) STORED,
    ADD COLUMN alertname    text NOT NULL DEFAULT '',
    ADD COLUMN group_status text NOT NULL DEFAULT '',
    ADD COLUMN receiver     text NOT NULL DEFAULT '';

-- The queue: unfinished work only, the head of each recipient's line first.
CREATE INDEX deliveries_queue_idx ON deliveries (recipient, seq) WHERE final_state IS NULL;
-- Queued resolved notifications, to find at claim time whether a firing one
-- is superseded.
CREATE INDEX deliveries_resolved_idx ON deliveries (recipient, group_key, seq)
    WHERE final_state IS NULL AND status = 'resolved';
-- Audit listing by final state (queued ones are found through the queue).
CREATE INDEX deliveries_final_state_idx ON deliveries (final_state, created_at DESC, operation_id DESC)
    WHERE final_state IS NOT NULL;
-- Audit listing by alert name.
CREATE INDEX deliveries_alertname_idx ON deliveries (alertname, created_at DESC, operation_id DESC);

ALTER TABLE notifications ADD COLUMN body bytea;
ALTER TABLE notifications ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE notifications ADD CONSTRAINT notifications_payload_or_body
    CHECK (body IS NOT NULL OR payload IS NOT NULL) NOT VALID;

COMMIT;
