-- The plan stage reads a run's claimed ledger rows in event order, 5,000 at a time, after the
-- last event it read: with the event id in the index that is a range scan, not a sort of the
-- whole run per chunk.
CREATE INDEX results_claim_order_idx ON msads.results (run_id, event_id) WHERE status = 'pending';
DROP INDEX msads.results_claim_idx;
