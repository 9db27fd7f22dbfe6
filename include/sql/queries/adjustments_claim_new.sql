-- The next chunk of new adjustments after the cursor (keyset order on ingested_at,
-- adjustment_id), each claimed with a placeholder ledger row (account 0, goal 0) exactly as
-- claim_new.sql claims events: the primary key makes a concurrent claim a no-op.
WITH cand AS (
    SELECT a.adjustment_id, a.event_id, a.adjustment_type, a.ingested_at
    FROM {{adjustments_table}} a
    WHERE (a.ingested_at, a.adjustment_id) > (%(after_at)s::timestamptz, %(after_id)s::text)
      AND NOT EXISTS (SELECT 1 FROM msads.adjustment_results r
                      WHERE r.adjustment_id = a.adjustment_id)
    ORDER BY a.ingested_at, a.adjustment_id
    LIMIT %(limit)s
), ins AS (
    INSERT INTO msads.adjustment_results (adjustment_id, event_id, adjustment_type, status,
                                          reason, run_id, claimed_at, first_seen_at)
    SELECT adjustment_id, event_id, adjustment_type, 'pending', 'claimed', %(run_id)s, %(now)s,
           %(now)s
    FROM cand
    ON CONFLICT DO NOTHING
    RETURNING adjustment_id
), last AS (
    SELECT ingested_at, adjustment_id FROM cand
    ORDER BY ingested_at DESC, adjustment_id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM cand),
       (SELECT ingested_at FROM last), (SELECT adjustment_id FROM last)
