-- Batches ({which}) become one outbox row per conversion, with what the outbox row of a new
-- event's conversion holds (pipeline/plan.py) and the batch's id, and the rules for outbox
-- rows go on from there:
-- a batch not accepted whole by its call, and the batches of a run whose lease has passed
-- (claim_due.sql then takes their rows over). Returns the keys unpacked.
WITH b AS (DELETE FROM msads.outbox_batches WHERE {which} RETURNING *)
INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, run_id, conversion_name,
                          conversion_time, conversion_value, currency_code, click_id,
                          email_sha256, phone_sha256, hashed, attribution_credit,
                          attribution_model, space_id, event_name, claimed_at, first_seen_at,
                          attempts, batch_id)
SELECT c.event_id, b.account_id, c.goal_id, b.customer_id, b.run_id, c.conversion_name,
       c.conversion_time, c.conversion_value, c.currency_code, c.click_id, c.email_sha256,
       c.phone_sha256, true, c.attribution_credit, c.attribution_model, c.space_id,
       c.event_name, b.claimed_at, c.first_seen_at, 0, b.batch_id
FROM b
CROSS JOIN LATERAL unnest(b.event_id, b.goal_id, b.conversion_name, b.conversion_time,
                          b.conversion_value, b.currency_code, b.click_id, b.email_sha256,
                          b.phone_sha256, b.attribution_credit, b.attribution_model,
                          b.space_id, b.event_name, b.first_seen_at)
    AS c(event_id, goal_id, conversion_name, conversion_time, conversion_value, currency_code,
         click_id, email_sha256, phone_sha256, attribution_credit, attribution_model, space_id,
         event_name, first_seen_at)
ON CONFLICT (event_id, account_id, goal_id) DO NOTHING
RETURNING event_id, account_id, goal_id
