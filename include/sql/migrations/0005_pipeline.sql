-- The upload pipeline: claims on the ledger, the outbox of conversions ready to send, and the
-- sentences that explain every reason code (used by `msads why` and the analysts' view).

ALTER TABLE msads.results ADD COLUMN claimed_at timestamptz;
CREATE INDEX results_claim_idx ON msads.results (run_id) WHERE status = 'pending';
CREATE INDEX results_due_idx ON msads.results (next_attempt_at)
    WHERE status IN ('pending', 'deferred');

-- Conversions planned and (after the hash stage) ready to upload. Holds SHA-256 digests, never
-- raw email or phone; a row leaves the outbox when its outcome is recorded.
CREATE TABLE msads.outbox (
    event_id        text NOT NULL,
    account_id      bigint NOT NULL,
    goal_id         bigint NOT NULL,
    customer_id     bigint NOT NULL,
    run_id          text NOT NULL,
    conversion_name text NOT NULL,
    conversion_time timestamptz NOT NULL,
    conversion_value numeric,
    currency_code   char(3),
    click_id        text,
    email_sha256    char(64),
    phone_sha256    char(64),
    hashed          boolean NOT NULL DEFAULT false,
    preflight_reason text,                 -- a later check that failed (goal_too_new, ...)
    preflight_detail text,
    defer_until     timestamptz,           -- for goal_too_new: when the goal is 2 hours old
    sent_at         timestamptz,           -- set before the call: a re-run knows it may be a resend
    PRIMARY KEY (event_id, account_id, goal_id)
);
CREATE INDEX outbox_account_idx ON msads.outbox (account_id, run_id) WHERE hashed;

CREATE TABLE msads.reasons (
    reason   text PRIMARY KEY,
    status   text NOT NULL,
    sentence text NOT NULL,
    fix      text
);
INSERT INTO msads.reasons (reason, status, sentence, fix) VALUES
('claimed', 'pending', 'The pipeline has picked the event up and is deciding what to do with it.', NULL),
('ready', 'pending', 'The conversion is ready and waits for the next upload to Microsoft.', NULL),
('retry', 'pending', 'Microsoft could not be reached or was busy; the upload will be retried.', 'Nothing to do: it is retried with backoff, and fails after 24 hours of errors.'),
('uploaded', 'uploaded', 'Microsoft Advertising accepted the conversion.', 'Microsoft can take up to 24 hours to show it in reports.'),
('capi_off', 'skipped', 'Microsoft CAPI was off for the event''s Space when the event arrived, so it was not sent.', 'Turn it on with: msads capi on --space SPACE (events that arrived while it was off are not sent later; use the msads_replay DAG to send them).'),
('not_mapped', 'skipped', 'No enabled mapping sends this event name to a Microsoft goal in the event''s Space.', 'Map it with: msads map add --account ACCOUNT --goal GOAL --event EVENT_NAME, then replay.'),
('goal_missing', 'skipped', 'The mapped goal does not exist in Microsoft Advertising (deleted, renamed, or not fetched yet).', 'Check msads map list; fix or re-create the mapping, refresh goals, then replay.'),
('account_inactive', 'deferred', 'The Microsoft ad account is not active (paused, not found, or its sign-in failed).', 'Reactivate or reconnect the account (msads auth status); held events are sent if it is active again within 7 days.'),
('not_attributed', 'skipped', 'The mapping sends only events attributed to Microsoft, and this event was attributed elsewhere.', 'Switch the mapping to send rule all if every event should be sent.'),
('no_identifier', 'skipped', 'The event has no usable Microsoft click id, email or phone, and Microsoft needs at least one.', 'Fill msclkid, email or phone for such events.'),
('goal_too_new', 'deferred', 'The goal was created less than 2 hours ago; Microsoft does not accept conversions for it yet.', 'Nothing to do: it is sent automatically once the goal is 2 hours old.'),
('outside_window', 'skipped', 'The event is older than the goal''s conversion window or Microsoft''s 90-day limit.', 'Send events sooner; Microsoft cannot accept these.'),
('future_time', 'skipped', 'The event time is more than 5 minutes in the future.', 'Write event_time with its time zone (timestamptz); a local time read as UTC lands in the future.'),
('invalid_value', 'skipped', 'The value or currency cannot be sent (negative, not a number, or an unknown currency).', 'Write a non-negative value and an ISO 4217 currency code, then replay.'),
('event_deleted', 'skipped', 'The event was deleted from the events table before it could be sent.', NULL),
('failed', 'failed', 'Microsoft kept failing for 24 hours, so the pipeline stopped trying.', 'See the last error; after it is fixed, replay with the msads_replay DAG.');

-- For analysts: one row per outcome, in plain words. SELECT * FROM msads.event_outcomes
-- WHERE event_id = '...';
CREATE VIEW msads.event_outcomes AS
SELECT r.event_id, r.space_id, r.event_name, r.account_id, r.goal_id, r.conversion_name,
       r.status, r.reason,
       CASE WHEN r.reason LIKE 'rejected:%'
            THEN 'Microsoft rejected the conversion: ' || coalesce(r.ms_message, r.ms_error_code, r.reason)
            ELSE coalesce(x.sentence, r.reason) END AS explanation,
       r.detail, x.fix AS what_to_do,
       r.ms_code, r.ms_error_code, r.tracking_id, r.attempts, r.next_attempt_at,
       r.sent_click_id, r.sent_email, r.sent_phone, r.conversion_time, r.conversion_value,
       r.currency_code, r.decided_at, r.run_id
FROM msads.results r
LEFT JOIN msads.reasons x ON x.reason = r.reason;
