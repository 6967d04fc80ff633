-- unconfirmed counts the sends of a delivery that may have reached the
-- recipient without the server confirming it: an Uncertain outcome, or a
-- claim taken over from a worker that stopped mid-send. It is what a
-- route's delivery.max_resends caps. A constant default makes this a
-- catalogue-only change: no table rewrite, instant on any table size.
BEGIN;
ALTER TABLE deliveries ADD COLUMN unconfirmed integer NOT NULL DEFAULT 0;
COMMIT;
