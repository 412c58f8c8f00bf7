-- Writing customers fast (CSV import), without changing what reads find.
--
-- The reseller index only serves lists scoped to one reseller
-- (`reseller_id = $n`, which implies NOT NULL, so the planner still uses a
-- partial index). Most customers have no reseller; as a full index every
-- one of them cost a write at a random place of the index.
DROP INDEX customers_reseller_idx;
CREATE INDEX customers_reseller_idx ON customers (tenant_id, reseller_id, sort_key, id)
    WHERE reseller_id IS NOT NULL;

-- FTS5 collects new terms in memory and writes them out as a new index
-- segment when the next statement of the transaction starts or the
-- collected data passes `hashsize` (default 1 MiB, about a thousand
-- customers' trigrams). With 16 MiB an import batch becomes one or two
-- segments instead of dozens: fewer, larger segments and less merging.
-- The memory is taken only while a write is under way.
INSERT INTO customers_fts(customers_fts, rank) VALUES ('hashsize', 16777216);
