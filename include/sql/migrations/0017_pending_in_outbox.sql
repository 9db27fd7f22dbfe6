-- A new event's conversion that is ready to send waits in the outbox alone, and gets its ledger
-- row once it is decided (pipeline/plan.py, ledger.record). Before, the plan stage wrote a
-- 'pending ready' ledger row beside each outbox row and the upload updated it: two ledger
-- writes per event, each a new row version with its index entries. Draining 1,000,000 events
-- (bench/pipeline.py, this code and the one before alternated on one machine), PostgreSQL's
-- CPU per event went from 36.2 and 37.2 µs to 33.0 and 33.3 on a slow day, and from 34.5 to
-- 28.0 on a faster one (docs/performance.md, issue #13, tenth session).
--
-- The outbox is therefore logged again: after a crash it still holds what was planned, and
-- rows a dead run left are taken over once the claim's lease has passed
-- (queries/claim_stale_outbox.sql). Rows planned again (retries, takeovers, replays) keep
-- their ledger row as before; their outbox row is the same as any other.
ALTER TABLE msads.outbox SET LOGGED;
ALTER TABLE msads.outbox
    ADD COLUMN space_id      text,
    ADD COLUMN event_name    text,
    ADD COLUMN claimed_at    timestamptz,
    ADD COLUMN first_seen_at timestamptz;

-- What waits in the outbox with no ledger row yet: pending, reason 'ready'. Every reader of
-- pending work reads it beside msads.results (summary, health, why, adjustments).
CREATE VIEW msads.outbox_pending AS
SELECT o.event_id, o.account_id, o.goal_id, o.space_id, o.event_name,
       'pending'::text AS status, 'ready'::text AS reason, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.run_id, o.claimed_at,
       COALESCE(o.first_seen_at, o.claimed_at) AS first_seen_at,
       COALESCE(o.claimed_at, o.first_seen_at) AS updated_at
FROM msads.outbox o
WHERE NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = o.event_id
                  AND r.account_id = o.account_id AND r.goal_id = o.goal_id);

CREATE OR REPLACE VIEW msads.event_outcomes AS
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
LEFT JOIN msads.reasons x ON x.reason = r.reason
UNION ALL
SELECT p.event_id, p.space_id, p.event_name, p.account_id, p.goal_id, p.conversion_name,
       p.status, p.reason, x.sentence, NULL, x.fix, NULL, NULL, NULL, 0, NULL, false,
       false, false, p.conversion_time, p.conversion_value, p.currency_code, NULL, p.run_id
FROM msads.outbox_pending p
LEFT JOIN msads.reasons x ON x.reason = p.reason;
