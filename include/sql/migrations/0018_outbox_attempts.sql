-- The upload reads what it needs of a conversion from its outbox row alone. Before, each batch
-- of 1,000 looked up every row's ledger row by key for the attempts so far and the first
-- sight (a new event's conversion has none, so the lookup found nothing for most rows). The
-- plan stage knows both when it writes the outbox row (pipeline/plan.py: 0 for a new event,
-- the ledger's count for a row planned again), so they are written there now. Read alone, on
-- 200,000 waiting rows, the batch read cost PostgreSQL 1.9 µs of CPU a row instead of 3.3
-- (docs/performance.md, issue #13, eleventh session).
--
-- Rows already waiting get theirs from the ledger here, so that a run in flight during the
-- upgrade counts their attempts and keeps their first sight.
ALTER TABLE msads.outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;

UPDATE msads.outbox o
SET attempts = r.attempts, first_seen_at = r.first_seen_at
FROM msads.results r
WHERE r.event_id = o.event_id AND r.account_id = o.account_id AND r.goal_id = o.goal_id;
