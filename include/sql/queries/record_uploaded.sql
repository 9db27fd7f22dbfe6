-- Conversions Microsoft accepted (ledger.record_uploaded): each leaves the outbox and gets its
-- ledger row, uploaded, with what its outbox row carried; a row planned again has one, and
-- gets the decision. The same rows as ledger.record writes for them, but the keys and
-- references come as arrays (%(e)b, %(a)b, %(g)b, %(ref)b) instead of a staged table, and the
-- rest from the outbox row: one COPY and one temporary table's writes fewer per call. The
-- arrays go in binary: dumped as text, they cost the client 1.6 µs a row, and 0.6 in binary.
-- Returns the keys recorded: a conversion whose outbox row is gone (taken over by another run
-- meanwhile) is not, and the caller records it the general way. The conflict clause below is
-- record_uploaded_again.sql for a call with a conversion the ledger may hold already (planned
-- again), and nothing for a call of new events only, which have no ledger row yet.
WITH s AS (SELECT * FROM unnest(%(e)b::text[], %(a)b::bigint[], %(g)b::bigint[], %(ref)b::text[])
           AS k(event_id, account_id, goal_id, sent_ref)),
o AS ({take_out} RETURNING *)
INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, tracking_id,
                           decided_at, sent_click_id, sent_email, sent_phone, sent_ref, attempts,
                           space_id, event_name, conversion_name, conversion_time,
                           conversion_value, currency_code, run_id, claimed_at, first_seen_at)
SELECT o.event_id, o.account_id, o.goal_id, 'uploaded', %(reason)s, %(tracking)s, %(at)s,
       o.click_id IS NOT NULL, o.email_sha256 IS NOT NULL, o.phone_sha256 IS NOT NULL,
       s.sent_ref, o.attempts + 1, o.space_id, o.event_name, o.conversion_name,
       o.conversion_time, o.conversion_value, o.currency_code, o.run_id, o.claimed_at,
       COALESCE(o.first_seen_at, now())
FROM o JOIN s ON s.event_id = o.event_id AND s.account_id = o.account_id AND s.goal_id = o.goal_id
{on_conflict}
RETURNING event_id, account_id, goal_id
