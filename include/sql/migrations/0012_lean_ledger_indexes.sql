-- Two indexes of the ledger that no query needs any more, each written on every insert and on
-- every status change (claim, plan, upload: three or four times per event):
--   results_status_idx (status, next_attempt_at): due rows are found by results_due_idx, the
--     pending count by the same partial index, a run's rows by run;
--   results_account_idx (account_id, status): reconciliation reads an account's uploaded rows
--     by results_reconcile_idx (account_id, decided_at) WHERE status = 'uploaded'.
-- Measured on 20,000-row inserts of pending ledger rows: 12.7-19.6 µs a row with them,
-- 8.1-11.4 µs without (three rounds, same server).
DROP INDEX IF EXISTS msads.results_status_idx;
DROP INDEX IF EXISTS msads.results_account_idx;
