-- The asset watcher's probe (include/msads_capi/hooks/watcher.py), run every few seconds in the
-- triggerer: where the events' and the adjustments' pick-up cursors stand, and the ingested_at of
-- the first row after each (NULL when none waits). Each subquery is one descent of the
-- (ingested_at, id) index, an index-only scan that stops at the first row (the ORDER BY ... LIMIT 1
-- keeps it so however far the cursor has got); nothing is claimed or locked.
SELECT ev.ingested_at AS events_at, ev.event_id AS events_id,
       (SELECT e.ingested_at FROM {{events_table}} e
        WHERE (e.ingested_at, e.event_id)
              > (coalesce(ev.ingested_at, '-infinity'), coalesce(ev.event_id, ''))
        ORDER BY e.ingested_at, e.event_id LIMIT 1) AS next_event_at,
       ad.ingested_at AS adjustments_at, ad.event_id AS adjustments_id,
       (SELECT a.ingested_at FROM {{adjustments_table}} a
        WHERE (a.ingested_at, a.adjustment_id)
              > (coalesce(ad.ingested_at, '-infinity'), coalesce(ad.event_id, ''))
        ORDER BY a.ingested_at, a.adjustment_id LIMIT 1) AS next_adjustment_at
FROM (VALUES (1)) AS one (x)
LEFT JOIN msads.pickup_cursor ev ON ev.name = 'events'
LEFT JOIN msads.pickup_cursor ad ON ad.name = 'adjustments'
