-- What is left of a run's outbox for one account ({part}: the uploader's part, Part.release_sql:
-- its rows of their own within its event id bounds, and those unpacked from its batches) goes
-- to a later run: each conversion's ledger row says pending, with
-- next_attempt_at %(at)s (and %(reason)s / %(detail)s when they say more than 'ready'), and
-- claim_due.sql hands it to the first run after that time, which plans it again. A new
-- event's conversion has no ledger row yet (it waited in the outbox alone): it gets one here.
INSERT INTO msads.results (event_id, account_id, goal_id, space_id, event_name, status, reason,
                           detail, next_attempt_at, conversion_name, conversion_time,
                           conversion_value, currency_code, run_id, claimed_at, first_seen_at)
SELECT o.event_id, o.account_id, o.goal_id, o.space_id, o.event_name, 'pending',
       COALESCE(%(reason)s, 'ready'), %(detail)s, %(at)s, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.run_id, o.claimed_at,
       COALESCE(o.first_seen_at, now())
FROM msads.outbox o
WHERE o.account_id = %(a)s AND o.run_id = %(run)s{part}
ON CONFLICT (event_id, account_id, goal_id) DO UPDATE
SET next_attempt_at = EXCLUDED.next_attempt_at, updated_at = now(),
    reason = COALESCE(%(reason)s, msads.results.reason),
    detail = COALESCE(%(detail)s, msads.results.detail)
WHERE msads.results.status = 'pending'
