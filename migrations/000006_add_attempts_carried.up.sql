-- Coalescing: when a backlog builds for one recipient, one chat message
-- carries several deliveries. Each carried delivery keeps its own attempt
-- row; carried_by names the delivery whose attempt sent the message (NULL
-- when the delivery went out on its own), and carried counts, on that
-- attempt, the other deliveries the message held. Both are catalogue-only
-- changes (NULL and a constant default): instant on any table size.
BEGIN;
ALTER TABLE attempts ADD COLUMN carried_by text;
ALTER TABLE attempts ADD COLUMN carried integer NOT NULL DEFAULT 0;
COMMIT;
