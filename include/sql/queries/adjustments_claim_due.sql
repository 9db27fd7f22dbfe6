-- Adjustment rows whose wait is over (retries, adjustments held for their original), and
-- claims a dead run left behind, go to this run, as claim_due.sql does for events. A held
-- placeholder (goal 0) is planned again; a goal row is sent again as it was planned.
UPDATE msads.adjustment_results r
SET run_id = %(run_id)s, claimed_at = %(now)s, next_attempt_at = NULL, status = 'pending',
    reason = CASE WHEN r.goal_id = 0 THEN 'claimed' ELSE 'ready' END, updated_at = now()
FROM (
    SELECT adjustment_id, account_id, goal_id FROM msads.adjustment_results
    WHERE status IN ('pending', 'deferred')
      AND ((next_attempt_at IS NOT NULL AND next_attempt_at <= %(now)s)
           OR (next_attempt_at IS NULL AND claimed_at < %(stale_before)s))
    ORDER BY next_attempt_at NULLS FIRST, adjustment_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE r.adjustment_id = due.adjustment_id AND r.account_id = due.account_id
  AND r.goal_id = due.goal_id
RETURNING r.adjustment_id
