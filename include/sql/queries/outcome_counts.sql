-- Outcomes per account and reason over the last hour, day and week (by when they were decided;
-- pending rows by when they last changed), and the rows still waiting: in the ledger, and in
-- the outbox with no ledger row yet (new events' conversions ready to send).
SELECT account_id, reason, status,
       count(*) FILTER (WHERE changed >= %(now)s - interval '1 hour') AS hour,
       count(*) FILTER (WHERE changed >= %(now)s - interval '1 day') AS day,
       count(*) AS week
FROM (SELECT account_id, reason, status, COALESCE(decided_at, updated_at) AS changed
      FROM msads.results
      WHERE status = 'pending' OR COALESCE(decided_at, updated_at) >= %(now)s - interval '7 days'
      UNION ALL
      SELECT account_id, reason, status, updated_at FROM msads.outbox_pending) r
GROUP BY account_id, reason, status
ORDER BY account_id, reason
