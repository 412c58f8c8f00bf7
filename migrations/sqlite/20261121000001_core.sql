-- Core tables of Kontor (SQLite). Timestamps are Unix milliseconds (UTC),
-- ids are text UUIDs, JSON is text. Constraint names match the PostgreSQL
-- migration: the code maps them to error codes.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  BIGINT NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    email          TEXT NOT NULL,
    email_norm     TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    locale         TEXT,
    customer_id    TEXT,
    status         TEXT NOT NULL DEFAULT 'active',
    mfa_enabled    BIGINT NOT NULL DEFAULT 0,
    mfa_secret     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_login_at  BIGINT,
    CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email_norm)
);
CREATE INDEX users_email_norm_idx ON users (email_norm);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    csrf_token    TEXT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    token_hash    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    expires_at    BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_user_idx ON api_tokens (tenant_id, user_id);

CREATE TABLE role_permissions (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    role        TEXT NOT NULL,
    permission  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role, permission)
);

CREATE TABLE customers (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    company        TEXT,
    contact_name   TEXT,
    email          TEXT,
    email_norm     TEXT,
    phone          TEXT,
    street         TEXT,
    postal_code    TEXT,
    city           TEXT,
    region         TEXT,
    country        TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    custom_fields  TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'active',
    reseller_id    TEXT REFERENCES users(id),
    sort_key       TEXT NOT NULL,
    search_text    TEXT NOT NULL,
    erased_at      BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT customers_tenant_email_key UNIQUE (tenant_id, email_norm)
);
CREATE INDEX customers_list_idx ON customers (tenant_id, sort_key, id);
CREATE INDEX customers_reseller_idx ON customers (tenant_id, reseller_id, sort_key, id);

-- Substring search on name, e-mail, phone and city: an external-content
-- FTS5 table with the trigram tokenizer, kept in step by triggers.
CREATE VIRTUAL TABLE customers_fts USING fts5(
    search_text, content='customers', content_rowid='rowid', tokenize='trigram'
);
CREATE TRIGGER customers_fts_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customers_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER customers_fts_delete AFTER DELETE ON customers BEGIN
    INSERT INTO customers_fts(customers_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER customers_fts_update AFTER UPDATE OF search_text ON customers BEGIN
    INSERT INTO customers_fts(customers_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO customers_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TABLE contacts (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    email        TEXT,
    phone        TEXT,
    position     TEXT,
    is_primary   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX contacts_customer_idx ON contacts (tenant_id, customer_id);

CREATE TABLE notes (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    author_id    TEXT REFERENCES users(id),
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX notes_customer_idx ON notes (tenant_id, customer_id, created_at);

-- The timeline: core and modules write entries about a customer.
CREATE TABLE activities (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    source       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',
    actor_id     TEXT REFERENCES users(id),
    created_at   BIGINT NOT NULL
);
CREATE INDEX activities_customer_idx ON activities (tenant_id, customer_id, created_at, id);

-- Settings: tenant_id '' holds the global ones.
CREATE TABLE settings (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT,
    target_id    TEXT,
    data         TEXT NOT NULL DEFAULT '{}',
    ip           TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, created_at);

-- The durable job queue: queued -> running -> done | queued again (retry
-- with backoff) | dead (attempts exhausted).
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    run_at        BIGINT NOT NULL,
    locked_by     TEXT,
    locked_until  BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
