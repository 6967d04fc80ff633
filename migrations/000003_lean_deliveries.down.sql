-- Reverts 000003_lean_deliveries. Bodies recorded since are kept as jsonb
-- where they are valid jsonb; a body jsonb cannot hold makes the revert
-- fail, and nothing is lost.
BEGIN;

UPDATE notifications SET payload = convert_from(body, 'UTF8')::jsonb WHERE payload IS NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_payload_or_body;
ALTER TABLE notifications ALTER COLUMN payload SET NOT NULL;
ALTER TABLE notifications DROP COLUMN body;

DROP INDEX deliveries_alertname_idx;
DROP INDEX deliveries_final_state_idx;
DROP INDEX deliveries_resolved_idx;
DROP INDEX deliveries_queue_idx;
ALTER TABLE deliveries
    DROP COLUMN receiver,
    DROP COLUMN group_status,
    DROP COLUMN alertname,
    DROP COLUMN final_state;
ALTER TABLE deliveries RESET (fillfactor);

CREATE INDEX deliveries_queue_idx ON deliveries (recipient, seq)
    WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_resolved_idx ON deliveries (recipient, group_key, seq)
    WHERE state = 'pending' AND status = 'resolved';
CREATE INDEX deliveries_state_idx ON deliveries (state, created_at DESC, operation_id DESC);
CREATE INDEX notifications_dedup_key_idx ON notifications (dedup_key);

COMMIT;
