-- Refunds and cancellations (docs/data-contract.md): the analysts' adjustments table, and the
-- ledger of what became of each adjustment per (account, goal) its original was uploaded to.
-- {{adjustments_table}} is conversion_adjustments unless MSADS_ADJUSTMENTS_TABLE names another.
-- An existing table of that name is left as it is: the pipeline only reads it.
CREATE TABLE IF NOT EXISTS {{adjustments_table}} (
    adjustment_id   text PRIMARY KEY,
    event_id        text NOT NULL,          -- the original conversion's event_id
    adjustment_type text NOT NULL,          -- 'restate' (new value) or 'retract' (remove)
    adjusted_value  numeric,                -- restate only: the new value
    currency_code   char(3),                -- restate only; the original's when empty
    adjusted_at     timestamptz NOT NULL,   -- when the refund or cancellation happened
    ingested_at     timestamptz NOT NULL DEFAULT now()
);

-- Incremental pick-up reads by ingested_at, the same way as events.
CREATE INDEX IF NOT EXISTS conversion_adjustments_ingested_at_idx
    ON {{adjustments_table}} (ingested_at, adjustment_id);
CREATE INDEX IF NOT EXISTS conversion_adjustments_event_idx
    ON {{adjustments_table}} (event_id);

-- One outcome per (adjustment, account, goal); account 0 / goal 0 while it is claimed, or when
-- it is decided before any goal applies (for example original_not_uploaded). What is sent is
-- kept with it: the original's goal name, time and click id, and the identifiers' hashes.
CREATE TABLE msads.adjustment_results (
    adjustment_id   text NOT NULL,
    account_id      bigint NOT NULL DEFAULT 0,
    goal_id         bigint NOT NULL DEFAULT 0,
    event_id        text NOT NULL,
    adjustment_type text,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'uploaded', 'rejected', 'skipped', 'deferred', 'failed')),
    reason          text NOT NULL,
    detail          text,
    ms_code         integer,
    ms_error_code   text,
    ms_message      text,
    tracking_id     text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    customer_id     bigint,
    conversion_name text,
    conversion_time timestamptz,
    click_id        text,
    need_email      boolean NOT NULL DEFAULT false,
    need_phone      boolean NOT NULL DEFAULT false,
    email_sha256    text,
    phone_sha256    text,
    hashed          boolean NOT NULL DEFAULT false,
    adjusted_at     timestamptz,
    adjusted_value  numeric,
    currency_code   char(3),
    run_id          text,
    claimed_at      timestamptz,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (adjustment_id, account_id, goal_id)
);
CREATE INDEX adjustment_results_event_idx ON msads.adjustment_results (event_id);
CREATE INDEX adjustment_results_run_idx ON msads.adjustment_results (run_id) WHERE status = 'pending';
CREATE INDEX adjustment_results_due_idx ON msads.adjustment_results (status, next_attempt_at);

-- For analysts: one row per adjustment outcome, in plain words.
CREATE VIEW msads.adjustment_outcomes AS
SELECT r.adjustment_id, r.event_id, r.adjustment_type, r.account_id, r.goal_id,
       r.conversion_name, r.status, r.reason,
       CASE WHEN r.reason LIKE 'rejected:%'
            THEN 'Microsoft rejected the adjustment: ' || coalesce(r.ms_message, r.ms_error_code, r.reason)
            ELSE coalesce(x.sentence, r.reason) END AS explanation,
       r.detail, x.fix AS what_to_do, r.ms_code, r.ms_error_code, r.tracking_id, r.attempts,
       r.next_attempt_at, r.adjusted_at, r.adjusted_value, r.currency_code, r.decided_at, r.run_id
FROM msads.adjustment_results r
LEFT JOIN msads.reasons x ON x.reason = r.reason;
