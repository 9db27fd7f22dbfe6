-- Adjustments inside the overlap window before the cursor that no run has claimed (their
-- transaction committed late), as claim_late.sql does for events.
INSERT INTO msads.adjustment_results (adjustment_id, event_id, adjustment_type, status, reason,
                                      run_id, claimed_at, first_seen_at)
SELECT a.adjustment_id, a.event_id, a.adjustment_type, 'pending', 'claimed', %(run_id)s,
       %(now)s, %(now)s
FROM {{adjustments_table}} a
WHERE a.ingested_at > %(cursor_at)s::timestamptz - %(overlap)s::interval
  AND (a.ingested_at, a.adjustment_id) <= (%(cursor_at)s::timestamptz, %(cursor_id)s::text)
  AND NOT EXISTS (SELECT 1 FROM msads.adjustment_results r
                  WHERE r.adjustment_id = a.adjustment_id)
LIMIT %(limit)s
ON CONFLICT DO NOTHING
RETURNING adjustment_id
