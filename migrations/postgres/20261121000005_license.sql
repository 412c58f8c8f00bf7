-- The installation's license (self-hosted): one row, made by the server the
-- first time it is needed (core/src/license/store.rs).
--
-- instance_id: made once per install; an instance-bound license names it.
--   It lives here, not on the machine, so restoring a backup onto another
--   machine keeps a license working.
-- trial_started_at: when the 30-day trial of every module began.
-- last_seen_at: the latest time this installation has seen; it never moves
--   back, so a clock set back by more than a day is noticed.
-- license_text: the armored license as installed (verified again on read).
CREATE TABLE license_installation (
    id                INTEGER PRIMARY KEY,
    instance_id       TEXT NOT NULL,
    trial_started_at  BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    license_text      TEXT,
    license_id        TEXT,
    installed_at      BIGINT,
    CONSTRAINT license_installation_one_row CHECK (id = 1)
);
