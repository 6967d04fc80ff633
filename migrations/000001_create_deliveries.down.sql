-- Drops the delivery store. Everything recorded is lost.
BEGIN;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS attempts;
DROP TABLE IF EXISTS deliveries;
DROP TABLE IF EXISTS duplicates;
DROP TABLE IF EXISTS dedup_keys;
DROP TABLE IF EXISTS notifications;
COMMIT;
