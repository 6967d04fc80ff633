-- Reverts 000002_add_deliveries_unconfirmed.
BEGIN;
ALTER TABLE deliveries DROP COLUMN unconfirmed;
COMMIT;
