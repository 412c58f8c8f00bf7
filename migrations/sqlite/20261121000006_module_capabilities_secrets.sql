-- Module capabilities an administrator accepted, and module secrets.

-- The capabilities of the module's manifest (`secrets`, `crm`...) that an
-- administrator accepted at install or later: a JSON array of names. A
-- module uses a capability only when its manifest declares it and it is
-- listed here. Bundled modules get what they declare (part of the binary).
ALTER TABLE modules ADD COLUMN accepted_capabilities TEXT NOT NULL DEFAULT '[]';

-- Secrets an administrator set for a module, per tenant. Only ciphertext:
-- XChaCha20-Poly1305 under the server's secret key (config `secret_key` or
-- the key file in the data dir), with a random nonce per value and the
-- tenant, module and name as associated data, so a value copied into
-- another row does not open. key_id names the key that sealed it.
CREATE TABLE module_secrets (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    module_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT,
    PRIMARY KEY (tenant_id, module_id, name)
);
