-- The module registry, entitlements, schedules and the event outbox.

-- Installed modules (install-wide). Bundled modules' components live in
-- the binary; uploaded packages are kept in module_packages so that every
-- process of a scale-out install can load them.
CREATE TABLE modules (
    id                TEXT PRIMARY KEY,
    version           TEXT NOT NULL,
    state             TEXT NOT NULL,
    source            TEXT NOT NULL,
    manifest          TEXT NOT NULL,
    component_digest  TEXT NOT NULL,
    installed_at      BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    failures          BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_failure_at   BIGINT
);

CREATE TABLE module_packages (
    module_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    package     BYTEA NOT NULL,
    stored_at   BIGINT NOT NULL,
    PRIMARY KEY (module_id, version)
);

-- Which tenant may use which module, and why (trial, license, subscription, manual).
CREATE TABLE module_entitlements (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    module_id    TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL,
    valid_until  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, module_id)
);

-- When each scheduled module job last ran per tenant.
CREATE TABLE module_job_runs (
    tenant_id    TEXT NOT NULL,
    module_id    TEXT NOT NULL,
    job          TEXT NOT NULL,
    last_run_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, module_id, job)
);

-- Publisher keys an admin added to the trust store.
CREATE TABLE module_trusted_keys (
    key_id      TEXT PRIMARY KEY,
    publisher   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    added_at    BIGINT NOT NULL
);

-- The transactional outbox: an event is written in the transaction of the
-- change that caused it, then fanned out to subscribed modules as jobs.
CREATE TABLE event_outbox (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT,
    name           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    occurred_at    BIGINT NOT NULL,
    dispatched_at  BIGINT
);
CREATE INDEX event_outbox_pending_idx ON event_outbox (dispatched_at, id);
