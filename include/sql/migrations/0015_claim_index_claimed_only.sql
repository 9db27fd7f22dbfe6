-- The plan stage reads a run's claimed ledger rows (reason 'claimed': late, due and taken-over
-- rows) by results_claim_order_idx, and only those (pipeline/plan.py, _CLAIMED). New events are
-- written straight as 'ready', and each of them was an entry of the index all the same, read by
-- no query: one more index insert per planned event. COPY of 20,000-row chunks of planned
-- ledger rows, the two indexes alternated on one server: 5.74 and 5.64 µs a row with every
-- pending row, 4.43 and 4.29 with only the claimed ones.
DROP INDEX IF EXISTS msads.results_claim_order_idx;
CREATE INDEX results_claim_order_idx ON msads.results (run_id, event_id)
    WHERE status = 'pending' AND reason = 'claimed';
