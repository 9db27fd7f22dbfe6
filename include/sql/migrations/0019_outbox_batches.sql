-- A new event's conversions that are ready to send wait as batches: one row per call's worth
-- of one account's conversions (1,000, or an upload part's least when that is smaller:
-- pipeline/plan.py, batch_size), each field an array in the conversions' order (event, goal).
-- The plan stage writes them (ledger.write_ready); the upload sends batches as calls (small
-- ones together, up to 1,000 conversions) and, when Microsoft accepts a call whole, writes
-- their ledger rows from the batches and deletes them, in one statement
-- (queries/outbox_batch_record.sql). Anything else (a conversion refused, a call that failed,
-- the run's time budget spent, a run that died) first turns the batches into one outbox row
-- per conversion (queries/outbox_batch_unpack.sql), and the rules for outbox rows go on from
-- there as before.
--
-- Per conversion, a row of msads.outbox cost PostgreSQL its heap tuple and two index entries
-- to write, a lookup and a delete to take out, and an index scan to read. Draining 1,000,000
-- events (bench/pipeline.py, two pairs alternated with the code before on one machine),
-- PostgreSQL's CPU per event went from 40.3 and 35.4 µs to 26.7 and 25.5, and the drain from
-- 16,133 and 17,972 to 20,466 and 22,076 events/s (docs/performance.md, issue #13, fifteenth
-- session).
--
-- The arrays are stored uncompressed (STORAGE EXTERNAL), as in the measurements above: most of
-- a batch is hashes and click ids, random text that compression would not shrink (assumed,
-- not measured).
CREATE TABLE msads.outbox_batches (
    batch_id           bigserial PRIMARY KEY,
    run_id             text NOT NULL,
    account_id         bigint NOT NULL,
    customer_id        bigint NOT NULL,
    claimed_at         timestamptz NOT NULL,    -- when its run planned it (its lease)
    conversions        integer NOT NULL,
    event_id           text[] NOT NULL,
    goal_id            bigint[] NOT NULL,
    conversion_name    text[] NOT NULL,
    conversion_time    timestamptz[] NOT NULL,
    conversion_value   numeric[] NOT NULL,
    currency_code      char(3)[] NOT NULL,
    click_id           text[] NOT NULL,
    email_sha256       char(64)[] NOT NULL,
    phone_sha256       char(64)[] NOT NULL,
    attribution_credit numeric[] NOT NULL,
    attribution_model  text[] NOT NULL,
    space_id           text[] NOT NULL,
    event_name         text[] NOT NULL,
    first_seen_at      timestamptz[] NOT NULL
);
CREATE INDEX outbox_batches_run_idx ON msads.outbox_batches (account_id, run_id, batch_id);
ALTER TABLE msads.outbox_batches
    ALTER COLUMN event_id SET STORAGE EXTERNAL,
    ALTER COLUMN goal_id SET STORAGE EXTERNAL,
    ALTER COLUMN conversion_name SET STORAGE EXTERNAL,
    ALTER COLUMN conversion_time SET STORAGE EXTERNAL,
    ALTER COLUMN conversion_value SET STORAGE EXTERNAL,
    ALTER COLUMN currency_code SET STORAGE EXTERNAL,
    ALTER COLUMN click_id SET STORAGE EXTERNAL,
    ALTER COLUMN email_sha256 SET STORAGE EXTERNAL,
    ALTER COLUMN phone_sha256 SET STORAGE EXTERNAL,
    ALTER COLUMN attribution_credit SET STORAGE EXTERNAL,
    ALTER COLUMN attribution_model SET STORAGE EXTERNAL,
    ALTER COLUMN space_id SET STORAGE EXTERNAL,
    ALTER COLUMN event_name SET STORAGE EXTERNAL,
    ALTER COLUMN first_seen_at SET STORAGE EXTERNAL;

-- An outbox row unpacked from a batch keeps the batch's id: the uploader that unpacked it
-- decides it, and its part's release hands it on (pipeline/upload.py); an uploader's reads of
-- outbox rows take only rows of their own (NULL).
ALTER TABLE msads.outbox ADD COLUMN batch_id bigint;

-- One row per conversion of a batch, as an outbox row would hold it.
CREATE VIEW msads.outbox_batch_rows AS
SELECT c.event_id, b.account_id, c.goal_id, b.customer_id, b.run_id, c.conversion_name,
       c.conversion_time, c.conversion_value, c.currency_code::char(3) AS currency_code,
       c.click_id, c.email_sha256::char(64) AS email_sha256,
       c.phone_sha256::char(64) AS phone_sha256, c.attribution_credit, c.attribution_model, c.space_id, c.event_name,
       b.claimed_at, c.first_seen_at, b.batch_id, c.position
FROM msads.outbox_batches b
CROSS JOIN LATERAL unnest(b.event_id, b.goal_id, b.conversion_name, b.conversion_time,
                          b.conversion_value, b.currency_code, b.click_id, b.email_sha256,
                          b.phone_sha256, b.attribution_credit, b.attribution_model,
                          b.space_id, b.event_name, b.first_seen_at)
    WITH ORDINALITY AS c(event_id, goal_id, conversion_name, conversion_time,
                         conversion_value, currency_code, click_id, email_sha256,
                         phone_sha256, attribution_credit, attribution_model, space_id,
                         event_name, first_seen_at, position);

-- What waits to be sent with no ledger row yet: outbox rows, and now the batches' conversions
-- (a batch is deleted in the transaction that writes its ledger rows or unpacks it).
CREATE OR REPLACE VIEW msads.outbox_pending AS
SELECT o.event_id, o.account_id, o.goal_id, o.space_id, o.event_name,
       'pending'::text AS status, 'ready'::text AS reason, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.run_id, o.claimed_at,
       COALESCE(o.first_seen_at, o.claimed_at) AS first_seen_at,
       COALESCE(o.claimed_at, o.first_seen_at) AS updated_at
FROM msads.outbox o
WHERE NOT EXISTS (SELECT 1 FROM msads.results r WHERE r.event_id = o.event_id
                  AND r.account_id = o.account_id AND r.goal_id = o.goal_id)
UNION ALL
SELECT c.event_id, c.account_id, c.goal_id, c.space_id, c.event_name, 'pending', 'ready',
       c.conversion_name, c.conversion_time, c.conversion_value, c.currency_code, c.run_id,
       c.claimed_at, COALESCE(c.first_seen_at, c.claimed_at), c.claimed_at
FROM msads.outbox_batch_rows c;
