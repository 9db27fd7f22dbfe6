-- Batches Microsoft accepted whole in one call (ledger.record_batch): their conversions get
-- their ledger rows, uploaded, as queries/record_uploaded.sql writes them for outbox rows, and
-- the batches are deleted, in one statement. %(ref)b: each conversion's sent_ref, in the
-- call's order (the batches' ids, then their order). Returns fewer rows than were sent when a
-- batch is gone (another run took it over meanwhile).
WITH b AS (DELETE FROM msads.outbox_batches WHERE batch_id = ANY (%(batches)s) RETURNING *),
c AS (SELECT b.account_id, b.run_id, b.claimed_at, c.*,
             row_number() OVER (ORDER BY b.batch_id, c.position) AS n
      FROM b
      CROSS JOIN LATERAL unnest(b.event_id, b.goal_id, b.conversion_name, b.conversion_time,
                                b.conversion_value, b.currency_code, b.click_id,
                                b.email_sha256, b.phone_sha256, b.space_id, b.event_name,
                                b.first_seen_at)
          WITH ORDINALITY AS c(event_id, goal_id, conversion_name, conversion_time,
                               conversion_value, currency_code, click_id, email_sha256,
                               phone_sha256, space_id, event_name, first_seen_at, position))
INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, tracking_id,
                           decided_at, sent_click_id, sent_email, sent_phone, sent_ref, attempts,
                           space_id, event_name, conversion_name, conversion_time,
                           conversion_value, currency_code, run_id, claimed_at, first_seen_at)
SELECT c.event_id, c.account_id, c.goal_id, 'uploaded', %(reason)s, %(tracking)s, %(at)s,
       c.click_id IS NOT NULL, c.email_sha256 IS NOT NULL, c.phone_sha256 IS NOT NULL,
       r.sent_ref, 1, c.space_id, c.event_name, c.conversion_name, c.conversion_time,
       c.conversion_value, c.currency_code, c.run_id, c.claimed_at,
       COALESCE(c.first_seen_at, now())
FROM c JOIN unnest(%(ref)b::text[]) WITH ORDINALITY AS r(sent_ref, n) USING (n)
RETURNING event_id
