-- The upload's next batch for one account and run: up to %(n)s hashed outbox rows after the
-- keyset position (%(e)s, %(g)s), within the uploader's part ({part}, Part.release_sql: its
-- rows of their own within its event id bounds, and rows unpacked from its batches by an
-- earlier attempt of it: 0019_outbox_batches.sql), with what the plan stage put there of the ledger: attempts so far and first
-- sight (0018_outbox_attempts.sql). The batch reads the outbox alone, by the upload index.
-- ``unrecorded``: first seen when it was planned, so a new event, which has no ledger row yet
-- (ledger.record_uploaded records these without the conflict check; should one have a row
-- after all, the insert fails and is made again with it).
--
-- Nothing is locked. The read commits at once, before the call, so a lock held only while the
-- read ran, and it cost a WAL record a row (1.6 µs of PostgreSQL's CPU a row, measured alone).
-- Parts of a run never overlap, and another run reads only its own rows; a row taken over by
-- another run after the lease (claim_due.sql) was not kept from this one by it either.
SELECT o.event_id, o.account_id, o.goal_id, o.customer_id, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.click_id, o.email_sha256, o.phone_sha256,
       o.attribution_credit, o.attribution_model, o.attempts,
       COALESCE(o.first_seen_at, o.claimed_at, now()) AS first_seen_at,
       COALESCE(o.first_seen_at = o.claimed_at, false) AS unrecorded
FROM msads.outbox o
WHERE o.account_id = %(a)s AND o.run_id = %(run)s AND o.hashed
  AND (o.event_id, o.goal_id) > (%(e)s, %(g)s){part}
ORDER BY o.event_id, o.goal_id
LIMIT %(n)s
