-- Ledger rows whose wait is over (retries, held and deferred events), and claims a dead run left
-- behind (older than the lease), go to this run to be planned again. Clearing next_attempt_at and stamping
-- claimed_at makes a concurrent run's re-check fail, and SKIP LOCKED keeps it from waiting.
--
-- A new event's conversion waits in the outbox with no ledger row (0017_pending_in_outbox.sql):
-- when its run's lease has passed too, it gets a ledger row claimed by this run (``taken``).
-- The outbox is read whole for those (no index: it holds little between runs), and rows being
-- recorded meanwhile are skipped.
WITH taken AS (
    INSERT INTO msads.results (event_id, account_id, goal_id, space_id, event_name, status,
                               reason, run_id, claimed_at, first_seen_at)
    SELECT o.event_id, o.account_id, o.goal_id, o.space_id, o.event_name, 'pending', 'claimed',
           %(run_id)s, %(now)s, COALESCE(o.first_seen_at, o.claimed_at)
    FROM msads.outbox o
    WHERE o.claimed_at < %(stale_before)s
      AND NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = o.event_id
                      AND r.account_id = o.account_id AND r.goal_id = o.goal_id)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
    ON CONFLICT DO NOTHING
    RETURNING event_id
), due AS (
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
)
SELECT event_id FROM taken
UNION ALL
SELECT event_id FROM due
