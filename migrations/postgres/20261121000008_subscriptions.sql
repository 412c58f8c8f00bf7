-- SaaS plans, tenant subscriptions and the payment webhook's replay log
-- (core/src/subscriptions/). Entitlements follow from subscriptions: the
-- code writes module_entitlements rows with source 'subscription'.

-- Plans are install-wide and managed by the operator (`kontor plan ...`).
-- modules: JSON array of entitlement keys (by default the module ids).
-- price_minor + currency: integer minor units (cents) and ISO 4217 code.
-- billing_interval: `month` or `year`.
-- status: `active` (offered) or `archived` (kept for subscribers, not offered).
CREATE TABLE plans (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    modules           TEXT NOT NULL,
    price_minor       BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    billing_interval  TEXT NOT NULL,
    trial_days        BIGINT NOT NULL,
    status            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT plans_price_not_negative CHECK (price_minor >= 0),
    CONSTRAINT plans_trial_not_negative CHECK (trial_days >= 0)
);

-- A tenant's subscription to a plan.
-- status: trialing, active, past_due or canceled.
-- current_period_*: the trial or the paid period (Unix ms).
-- past_due_since: when the payment became overdue (the grace runs from here).
-- canceled_at: when it was canceled (modules stay usable to the period end).
CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    plan_id               TEXT NOT NULL REFERENCES plans(id),
    status                TEXT NOT NULL,
    current_period_start  BIGINT NOT NULL,
    current_period_end    BIGINT NOT NULL,
    past_due_since        BIGINT,
    canceled_at           BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id, created_at);
-- At most one subscription per tenant that is not canceled.
CREATE UNIQUE INDEX subscriptions_one_open_per_tenant ON subscriptions (tenant_id)
    WHERE status <> 'canceled';

-- Every payment webhook event applied (or deliberately ignored), by the
-- provider's event id: a redelivered event is acknowledged, not applied again.
CREATE TABLE payment_webhook_events (
    event_id         TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    subscription_id  TEXT,
    outcome          TEXT NOT NULL,
    received_at      BIGINT NOT NULL
);
