-- The upload's next call for one account and run (0019_outbox_batches.sql): the batches after
-- batch %(last)s within the uploader's part ({part}: its batch id bounds), as many as fit in
-- %(n)s conversions (at least one: a batch never holds more), so that the last, smaller batch
-- of each chunk is sent with the next. Values go out as floats (the plan stage checked they
-- are numbers within Microsoft's range), hashes as text.
SELECT batch_id, customer_id, event_id, goal_id, conversion_name, conversion_time,
       conversion_value::float8[], currency_code::text[], click_id, email_sha256::text[],
       phone_sha256::text[], attribution_credit::float8[], attribution_model, first_seen_at
FROM (SELECT b.*, sum(conversions) OVER (ORDER BY batch_id) AS running,
             count(*) OVER (ORDER BY batch_id) AS k
      FROM (SELECT * FROM msads.outbox_batches
            WHERE account_id = %(a)s AND run_id = %(run)s AND batch_id > %(last)s{part}
            ORDER BY batch_id LIMIT %(n)s) b) b
WHERE running <= %(n)s OR k = 1
ORDER BY batch_id
