-- Ledger rows whose wait is over (retries, held and deferred events), and claims a dead run left
-- behind (older than the lease), go to this run to be planned again. Clearing next_attempt_at and stamping
-- claimed_at makes a concurrent run's re-check fail, and SKIP LOCKED keeps it from waiting.
UPDATE msads.results r
SET run_id = %(run_id)s, claimed_at = %(now)s, next_attempt_at = NULL, status = 'pending',
    reason = 'claimed', updated_at = now()
FROM (
    SELECT event_id, account_id, goal_id FROM msads.results
    WHERE status IN ('pending', 'deferred')
      AND ((next_attempt_at IS NOT NULL AND next_attempt_at <= %(now)s)
           OR (next_attempt_at IS NULL AND claimed_at < %(stale_before)s))
    ORDER BY next_attempt_at NULLS FIRST, event_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE r.event_id = due.event_id AND r.account_id = due.account_id AND r.goal_id = due.goal_id
RETURNING r.event_id
