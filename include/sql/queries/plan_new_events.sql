-- The next chunk of new events after the pick-up cursor, in keyset order on (ingested_at,
-- event_id), read by the plan stage while it holds the cursor row's lock (include/msads_capi/
-- pipeline/plan.py): the chunk is planned, its ledger rows written and the cursor moved past it
-- in one transaction, so no other run can take the same events and a run that dies leaves
-- nothing half-claimed. The anti-join skips events the ledger already has (replayed or swept).
SELECT e.event_id, e.space_id, e.event_name, e.event_time, e.value, e.currency_code, e.msclkid,
       e.attributed_platform, e.email, e.phone, {{optional}}, e.ingested_at
FROM {{events_table}} e
WHERE (e.ingested_at, e.event_id) > (%(after_at)s::timestamptz, %(after_id)s::text)
  AND NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = e.event_id)
ORDER BY e.ingested_at, e.event_id
LIMIT %(limit)s
