-- Reverts 000006_add_attempts_carried.
BEGIN;
ALTER TABLE deliveries DROP COLUMN alone;
ALTER TABLE attempts DROP COLUMN carried;
ALTER TABLE attempts DROP COLUMN carried_by;
COMMIT;
