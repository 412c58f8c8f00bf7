-- Writing customers fast (CSV import), without changing what reads find.
--
-- The reseller index only serves lists scoped to one reseller
-- (`reseller_id = $n`, which implies NOT NULL, so the planner still uses a
-- partial index). Most customers have no reseller; as a full index every
-- one of them cost a write at a random place of the index.
DROP INDEX customers_reseller_idx;
CREATE INDEX customers_reseller_idx ON customers (tenant_id, reseller_id, sort_key, id)
    WHERE reseller_id IS NOT NULL;
