-- The plan stage's ready conversions of new events, staged in {stage} (ledger.write_ready),
-- go out as batches (0019_outbox_batches.sql): up to %(size)s conversions of one account a
-- batch, in event and goal order. A row that is not a new event's first attempt, not hashed,
-- or held by a later check stays an outbox row of its own (the statement after this one).
INSERT INTO msads.outbox_batches (run_id, account_id, customer_id, claimed_at, conversions,
    event_id, goal_id, conversion_name, conversion_time, conversion_value, currency_code,
    click_id, email_sha256, phone_sha256, attribution_credit, attribution_model, space_id,
    event_name, first_seen_at)
SELECT run_id, account_id, customer_id, min(claimed_at), count(*),
       array_agg(event_id ORDER BY event_id, goal_id),
       array_agg(goal_id ORDER BY event_id, goal_id),
       array_agg(conversion_name ORDER BY event_id, goal_id),
       array_agg(conversion_time ORDER BY event_id, goal_id),
       array_agg(conversion_value ORDER BY event_id, goal_id),
       array_agg(currency_code ORDER BY event_id, goal_id),
       array_agg(click_id ORDER BY event_id, goal_id),
       array_agg(email_sha256 ORDER BY event_id, goal_id),
       array_agg(phone_sha256 ORDER BY event_id, goal_id),
       array_agg(attribution_credit ORDER BY event_id, goal_id),
       array_agg(attribution_model ORDER BY event_id, goal_id),
       array_agg(space_id ORDER BY event_id, goal_id),
       array_agg(event_name ORDER BY event_id, goal_id),
       array_agg(first_seen_at ORDER BY event_id, goal_id)
FROM (SELECT s.*, (row_number() OVER (PARTITION BY run_id, account_id, customer_id
                                      ORDER BY event_id, goal_id) - 1) / %(size)s AS batch
      FROM {stage} s
      WHERE {batched}) s
GROUP BY run_id, account_id, customer_id, batch
ORDER BY account_id, batch
