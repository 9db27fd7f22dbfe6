-- Outbox rows leave the outbox: those in ``s``, the outcomes just recorded (ledger.record) or
-- the conversions planned again (ledger.take_out). Each is found by its key (LATERAL ...
-- LIMIT 1 keeps it a lookup with ``s`` outside; without the LIMIT, PostgreSQL makes it a join
-- again), then all are deleted by their row ids.
--
-- The outbox is emptied after every drain, and a vacuum that cannot shorten it leaves
-- statistics of no rows on many pages: PostgreSQL then believes the outbox holds one row while
-- it holds a backlog. Joined as a whole (DELETE ... USING s), it took the outbox as the outer
-- side of the join and read all of it for every row of ``s``: 35 s a call with 1,000,000
-- waiting, instead of a few ms.
DELETE FROM msads.outbox
WHERE ctid = ANY (ARRAY(
    SELECT o.ctid
    FROM s
    CROSS JOIN LATERAL (SELECT b.ctid FROM msads.outbox b
                        WHERE b.event_id = s.event_id AND b.account_id = s.account_id
                          AND b.goal_id = s.goal_id
                        LIMIT 1) o))
