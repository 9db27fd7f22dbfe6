-- One account's waiting conversions in run %(run)s split into %(k)s parts of consecutive
-- events (pipeline/upload.py, accounts_with_work): each part's last event id and its count,
-- in order. A part is uploaded by its own process; parts never overlap.
SELECT max(event_id), count(*)
FROM (SELECT event_id, ntile(%(k)s) OVER (ORDER BY event_id) AS part FROM msads.outbox
      WHERE account_id = %(a)s AND run_id = %(run)s AND hashed) o
GROUP BY part ORDER BY part
