-- One recorded outcome per (event, account, goal); account 0 / goal 0 when no goal applies
-- (for example capi_off or not_mapped). Never holds raw email or phone: only flags.
CREATE TABLE msads.results (
    event_id        text NOT NULL,
    account_id      bigint NOT NULL DEFAULT 0,
    goal_id         bigint NOT NULL DEFAULT 0,
    space_id        text,
    event_name      text,
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
    sent_click_id   boolean NOT NULL DEFAULT false,
    sent_email      boolean NOT NULL DEFAULT false,
    sent_phone      boolean NOT NULL DEFAULT false,
    conversion_name text,
    conversion_time timestamptz,
    conversion_value numeric,
    currency_code   char(3),
    run_id          text,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, account_id, goal_id)
);
CREATE INDEX results_status_idx ON msads.results (status, next_attempt_at);
CREATE INDEX results_account_idx ON msads.results (account_id, status);

-- Where incremental pick-up has got to; reads overlap it and anti-join msads.results.
CREATE TABLE msads.pickup_cursor (
    name        text PRIMARY KEY,
    ingested_at timestamptz NOT NULL,
    event_id    text NOT NULL DEFAULT '',
    run_id      text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
