-- The analysts' interface: one row per conversion (docs/data-contract.md).
-- {{events_table}} is conversion_events unless MSADS_EVENTS_TABLE names another table.
-- An existing table of that name is left as it is: the pipeline only reads it.
CREATE TABLE IF NOT EXISTS {{events_table}} (
    event_id            text PRIMARY KEY,
    space_id            text NOT NULL,
    event_name          text NOT NULL,
    event_time          timestamptz NOT NULL,
    value               numeric,
    currency_code       char(3),
    msclkid             text,
    email               text,
    phone               text,
    attributed_platform text,
    ingested_at         timestamptz NOT NULL DEFAULT now()
);

-- Incremental pick-up reads by ingested_at.
CREATE INDEX IF NOT EXISTS conversion_events_ingested_at_idx
    ON {{events_table}} (ingested_at, event_id);
