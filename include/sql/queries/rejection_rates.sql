-- Per account: conversions Microsoft answered (uploaded or rejected) in the window, and how
-- many of those it rejected.
SELECT account_id,
       count(*) AS sent,
       count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM msads.results
WHERE status IN ('uploaded', 'rejected') AND decided_at >= %(since)s AND decided_at <= %(now)s
GROUP BY account_id
ORDER BY account_id
