-- Reverts 000005_index_deliveries_search.
DROP INDEX CONCURRENTLY IF EXISTS deliveries_search_idx;
