-- One account's batches in run %(run)s split into %(k)s parts of consecutive batches
-- (pipeline/upload.py, accounts_with_work): each part's last batch id and its conversions, in
-- order. A part is uploaded by its own process; parts never overlap.
SELECT max(batch_id), sum(conversions)
FROM (SELECT batch_id, conversions, ntile(%(k)s) OVER (ORDER BY batch_id) AS part
      FROM msads.outbox_batches WHERE account_id = %(a)s AND run_id = %(run)s) b
GROUP BY part ORDER BY part
