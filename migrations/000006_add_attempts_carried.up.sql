-- Coalescing: when a backlog builds for one recipient, one chat message
-- carries several deliveries. Each carried delivery keeps its own attempt
-- row; carried_by names the delivery whose attempt sent the message (NULL
-- when the delivery went out on its own), and carried counts, on that
-- attempt, the other deliveries the message held. Both are catalogue-only
-- changes (NULL and a constant default): instant on any table size.
-- deliveries.alone marks a delivery that goes out in a message of its own
-- from now on: a message carrying it was refused, and a refusal must be
-- its own. No index mentions it, so a claim or finish stays a HOT update.
BEGIN;
ALTER TABLE attempts ADD COLUMN carried_by text;
ALTER TABLE attempts ADD COLUMN carried integer NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN alone boolean NOT NULL DEFAULT false;
COMMIT;
