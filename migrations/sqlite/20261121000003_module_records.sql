-- The record store behind the `records` import of modules (SQLite).
--
-- One table for every module's collections, scoped by tenant AND module in
-- the primary key, so every lookup names both. A collection's declared
-- indexes map, in declaration order, onto the typed slot columns s1..s4
-- (string indexes) and n1..n4 (number indexes); the host fills them from the
-- record's top-level fields on every write. Each slot has its own index
-- (tenant, module, collection, slot, id): equality, ranges, order and keyset
-- paging on an indexed field all run from that index. The indexes are
-- partial (slot IS NOT NULL): most collections use one or two slots, and
-- unused slots then cost no index space. Text compares bytewise (BINARY),
-- as the PostgreSQL migration's COLLATE "C" does, so both engines order
-- records the same way.

CREATE TABLE module_records (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    module_id   TEXT NOT NULL,
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    s1          TEXT,
    s2          TEXT,
    s3          TEXT,
    s4          TEXT,
    n1          REAL,
    n2          REAL,
    n3          REAL,
    n4          REAL,
    CONSTRAINT module_records_pkey PRIMARY KEY (tenant_id, module_id, collection, id)
);
CREATE INDEX module_records_s1_idx ON module_records (tenant_id, module_id, collection, s1, id) WHERE s1 IS NOT NULL;
CREATE INDEX module_records_s2_idx ON module_records (tenant_id, module_id, collection, s2, id) WHERE s2 IS NOT NULL;
CREATE INDEX module_records_s3_idx ON module_records (tenant_id, module_id, collection, s3, id) WHERE s3 IS NOT NULL;
CREATE INDEX module_records_s4_idx ON module_records (tenant_id, module_id, collection, s4, id) WHERE s4 IS NOT NULL;
CREATE INDEX module_records_n1_idx ON module_records (tenant_id, module_id, collection, n1, id) WHERE n1 IS NOT NULL;
CREATE INDEX module_records_n2_idx ON module_records (tenant_id, module_id, collection, n2, id) WHERE n2 IS NOT NULL;
CREATE INDEX module_records_n3_idx ON module_records (tenant_id, module_id, collection, n3, id) WHERE n3 IS NOT NULL;
CREATE INDEX module_records_n4_idx ON module_records (tenant_id, module_id, collection, n4, id) WHERE n4 IS NOT NULL;

-- How many records each module keeps per tenant: the quota check reads and
-- bumps this row in the writing transaction instead of counting records,
-- and the row lock makes the check exact under concurrent inserts.
CREATE TABLE module_record_usage (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    module_id   TEXT NOT NULL,
    records     BIGINT NOT NULL,
    CONSTRAINT module_record_usage_pkey PRIMARY KEY (tenant_id, module_id)
);

-- Named gap-free counters (invoice numbers), bumped by one atomic upsert.
CREATE TABLE module_sequences (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    module_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       BIGINT NOT NULL,
    CONSTRAINT module_sequences_pkey PRIMARY KEY (tenant_id, module_id, name)
);
