-- The search index keeps which customers contain each trigram, without the
-- positions (`detail=none`): half the size, and an import writes and merges
-- half as much. A search asks it for the customers that contain every
-- trigram of the term and checks the term itself against `search_text`
-- (see `search_filter` in core/src/crm/customers.rs), as PostgreSQL does
-- with its trigram index. The triggers on `customers` that keep the index
-- in step name it only, so they serve the new table as they did the old.
DROP TABLE customers_fts;
CREATE VIRTUAL TABLE customers_fts USING fts5(
    search_text, content='customers', content_rowid='rowid', tokenize='trigram', detail=none
);
INSERT INTO customers_fts(customers_fts, rank) VALUES ('hashsize', 16777216);
INSERT INTO customers_fts(customers_fts) VALUES ('rebuild');
