-- When the overlap sweep last ran for a cursor (pipeline/pickup.py): it runs at most once a
-- minute (PipelineConfig.sweep_every), by the run's clock. Each sweep anti-joins every row of the
-- 15-minute window with the ledger: about 0.5 s a run once a backfill of 1,000,000 rows sits
-- in the window, while the runs that drain it follow each other every few seconds.
ALTER TABLE msads.pickup_cursor ADD COLUMN swept_at timestamptz;
