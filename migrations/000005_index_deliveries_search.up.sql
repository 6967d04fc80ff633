-- The console's search: alert name and summary (the first line of the
-- text, where the shipped templates put the headline), matched as a
-- substring whatever the case. A trigram index finds the rare matches
-- that walking the newest-first index would look for through the whole
-- history. Built concurrently, so webhooks and delivery go on while it is
-- built; hence alone in its file and outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_search_idx ON deliveries
    USING gin ((alertname || ' ' || split_part(text, E'\n', 1)) gin_trgm_ops);
