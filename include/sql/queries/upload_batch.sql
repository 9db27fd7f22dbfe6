-- The upload's next batch for one account and run: up to %(n)s hashed outbox rows after the
-- keyset position (%(e)s, %(g)s), within the uploader's part ({part}: its event id bounds on
-- o.event_id), locked so that no other uploader takes them meanwhile, each with its ledger
-- row's attempts and first sight (a new event's conversion has no ledger row yet: none, and
-- the outbox's, from the second branch, which runs only when the first finds nothing). The
-- ledger row is read by its primary key, one row at a time
-- (LATERAL ... LIMIT 1; without the LIMIT, PostgreSQL makes the LATERAL a join again): joined as
-- a whole, PostgreSQL sometimes hashed or merged the whole ledger for a batch of 1,000 (up to
-- 2.8 s a call instead of 6 ms), above all once the prepared statement went to a generic plan.
SELECT o.event_id, o.account_id, o.goal_id, o.customer_id, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.click_id, o.email_sha256, o.phone_sha256,
       o.attribution_credit, o.attribution_model, r.attempts, r.first_seen_at
FROM (SELECT * FROM msads.outbox o
      WHERE o.account_id = %(a)s AND o.run_id = %(run)s AND o.hashed
        AND (o.event_id, o.goal_id) > (%(e)s, %(g)s){part}
      ORDER BY o.event_id, o.goal_id
      LIMIT %(n)s
      FOR UPDATE SKIP LOCKED) o
CROSS JOIN LATERAL ((SELECT r.attempts, r.first_seen_at FROM msads.results r
                     WHERE r.event_id = o.event_id AND r.account_id = o.account_id
                       AND r.goal_id = o.goal_id
                     LIMIT 1)
                    UNION ALL
                    SELECT 0, COALESCE(o.first_seen_at, o.claimed_at)
                    LIMIT 1) r
ORDER BY o.event_id, o.goal_id
