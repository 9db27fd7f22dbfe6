-- The upload reads an account's hashed outbox rows in key order, 1,000 at a time, after the
-- last key it read: this index serves that without scanning or sorting what is left.
CREATE INDEX outbox_upload_idx ON msads.outbox (account_id, run_id, event_id, goal_id)
    WHERE hashed;
DROP INDEX msads.outbox_account_idx;
