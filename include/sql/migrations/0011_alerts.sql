-- Alerts (docs/alerts.md): one row per incident, so that something that goes wrong sends one
-- alert when it starts and one when it clears, however often it is seen in between. The
-- key says what is wrong where (auth_failed:<account>, task_failed:<dag>:<task>[:<account>]);
-- an incident that clears and comes back later is a new row.
CREATE TABLE msads.alerts (
    alert_id         bigserial PRIMARY KEY,
    key              text NOT NULL,
    kind             text NOT NULL,          -- task_failed, run_overdue, rejection_rate, token_expiry, auth_failed
    subject          text NOT NULL,          -- the line people read first
    message          text NOT NULL,          -- what happened, where, and what to do (last sighting)
    opened_at        timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    seen             integer NOT NULL DEFAULT 1,  -- sightings while open
    resolved_at      timestamptz,
    resolution       text,                   -- what cleared it
    opened_sent_at   timestamptz,            -- the alert went out (NULL: not yet, or every channel failed)
    resolved_sent_at timestamptz             -- the recovery went out
);

-- At most one open incident per key: the row that de-duplicates.
CREATE UNIQUE INDEX alerts_open_key_idx ON msads.alerts (key) WHERE resolved_at IS NULL;
CREATE INDEX alerts_opened_at_idx ON msads.alerts (opened_at);
