-- The next chunk of new events after the cursor (keyset order on ingested_at, event_id). Each
-- gets a placeholder ledger row (account 0, goal 0, reason 'claimed'); the primary key makes a
-- concurrent run's insert of the same event a no-op, so no event is claimed twice.
WITH cand AS (
    SELECT e.event_id, e.space_id, e.event_name, e.ingested_at
    FROM {{events_table}} e
    WHERE (e.ingested_at, e.event_id) > (%(after_at)s::timestamptz, %(after_id)s::text)
      AND NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = e.event_id)
    ORDER BY e.ingested_at, e.event_id
    LIMIT %(limit)s
), ins AS (
    INSERT INTO msads.results (event_id, space_id, event_name, status, reason, run_id,
                               claimed_at, first_seen_at)
    SELECT event_id, space_id, event_name, 'pending', 'claimed', %(run_id)s, %(now)s, %(now)s
    FROM cand
    ON CONFLICT DO NOTHING
    RETURNING event_id
), last AS (
    SELECT ingested_at, event_id FROM cand ORDER BY ingested_at DESC, event_id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM cand),
       (SELECT ingested_at FROM last), (SELECT event_id FROM last)
