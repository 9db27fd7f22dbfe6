-- What the mapped upload works on (pipeline/upload.py, accounts_with_work): each account with
-- hashed conversions waiting in run %(run)s's outbox (rows of their own, and conversions in
-- batches), with how many of each, and each account with adjustments ready for the run (its
-- first part uploads them, after its conversions).
SELECT * FROM (
    SELECT a.account_id, a.name, a.space_id, a.conn_id,
           (SELECT count(*) FROM msads.outbox o
            WHERE o.account_id = a.account_id AND o.run_id = %(run)s AND o.hashed) AS waiting,
           (SELECT COALESCE(sum(b.conversions), 0)::bigint FROM msads.outbox_batches b
            WHERE b.account_id = a.account_id AND b.run_id = %(run)s) AS batched,
           a.account_id IN (SELECT account_id FROM msads.adjustment_results
                            WHERE run_id = %(run)s AND status = 'pending' AND reason = 'ready'
                              AND hashed) AS adjusting
    FROM msads.accounts a) w
WHERE waiting > 0 OR batched > 0 OR adjusting
ORDER BY account_id
