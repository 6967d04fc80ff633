-- Reverts 000004_add_redeliveries. pg_trgm is dropped only when nothing
-- else uses it (without CASCADE, DROP EXTENSION fails otherwise).
BEGIN;

DROP TABLE console_sessions;
DROP TABLE redeliveries;
DROP EXTENSION IF EXISTS pg_trgm;

COMMIT;
