-- Outcomes per account and reason over the last hour, day and week (by when they were decided;
-- pending rows by when they last changed), and the rows still waiting.
SELECT account_id, reason, status,
       count(*) FILTER (WHERE COALESCE(decided_at, updated_at) >= %(now)s - interval '1 hour') AS hour,
       count(*) FILTER (WHERE COALESCE(decided_at, updated_at) >= %(now)s - interval '1 day') AS day,
       count(*) AS week
FROM msads.results
WHERE status = 'pending' OR COALESCE(decided_at, updated_at) >= %(now)s - interval '7 days'
GROUP BY account_id, reason, status
ORDER BY account_id, reason
