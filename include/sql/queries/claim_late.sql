-- Events inside the overlap window before the cursor that no run has claimed: rows whose
-- transaction committed after a later row had been picked up. The anti-joins skip those a run
-- took already: decided, or waiting in the outbox to be sent (as a row, or in a batch).
INSERT INTO msads.results (event_id, space_id, event_name, status, reason, run_id, claimed_at,
                           first_seen_at)
SELECT e.event_id, e.space_id, e.event_name, 'pending', 'claimed', %(run_id)s, %(now)s, %(now)s
FROM {{events_table}} e
WHERE e.ingested_at > %(cursor_at)s::timestamptz - %(overlap)s::interval
  AND (e.ingested_at, e.event_id) <= (%(cursor_at)s::timestamptz, %(cursor_id)s::text)
  AND NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = e.event_id)
  AND NOT EXISTS (SELECT 1 FROM msads.outbox o WHERE o.event_id = e.event_id)
  AND e.event_id NOT IN (SELECT unnest(b.event_id) FROM msads.outbox_batches b)
LIMIT %(limit)s
ON CONFLICT DO NOTHING
RETURNING event_id
