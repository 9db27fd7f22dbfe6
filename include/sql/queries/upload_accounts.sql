-- What the mapped upload works on (pipeline/upload.py, accounts_with_work): each account with
-- hashed conversions waiting in run %(run)s's outbox, with how many, and each account with
-- adjustments ready for the run (its first part uploads them, after its conversions).
SELECT a.account_id, a.name, a.space_id, a.conn_id, count(o.event_id)
FROM msads.accounts a
LEFT JOIN msads.outbox o ON o.account_id = a.account_id AND o.run_id = %(run)s AND o.hashed
WHERE o.event_id IS NOT NULL
   OR a.account_id IN (SELECT account_id FROM msads.adjustment_results
                       WHERE run_id = %(run)s AND status = 'pending' AND reason = 'ready'
                         AND hashed)
GROUP BY 1, 2, 3, 4
ORDER BY 1
