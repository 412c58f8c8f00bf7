-- The e-mail log (core/src/mail/): every message Kontor sends, core and
-- modules alike, with what was sent and what became of it. A message is
-- written here and a `core.mail.send` job is queued in one transaction; the
-- job delivers it over SMTP with retries.
--
-- tenant_id: the tenant it was sent for; NULL for install-wide mail (the
--   license reminders of a self-hosted install).
-- source: `core`, `core.license`, or `module:{id}`.
-- template: the module template or core message kind it was made from.
-- recipients: JSON array of addresses.
-- status: `queued`, `retrying` (a delivery failed, another follows), `sent`
--   or `failed` (attempts used up; the job can be replayed).
-- message_id: the Message-ID header, so replies can be threaded.
CREATE TABLE email_log (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT REFERENCES tenants(id),
    source        TEXT NOT NULL,
    template      TEXT,
    recipients    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    text_body     TEXT NOT NULL,
    html_body     TEXT,
    reply_to      TEXT,
    in_reply_to   TEXT,
    message_id    TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    sent_at       BIGINT
);

CREATE INDEX email_log_tenant_created ON email_log (tenant_id, created_at DESC, id DESC);

-- The license reminder e-mails of a self-hosted install (core/src/license/
-- reminders.rs): one row per UTC day a reminder went out, so several
-- `kontor serve` processes send it once a day, not once each.
CREATE TABLE license_reminders (
    day        TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    email_id   TEXT,
    sent_at    BIGINT NOT NULL
);
