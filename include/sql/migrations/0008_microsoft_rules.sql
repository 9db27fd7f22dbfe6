-- Microsoft's documented rules (issue #8): goal flags that decide what may be sent, external
-- attribution from the events table, whole-request refusals that wait instead of rejecting,
-- and the reasons that explain each new outcome.

-- Goal state as Microsoft lists it. NULL until the next goal refresh: unknown is not "off".
ALTER TABLE msads.goals
    ADD COLUMN enhanced_conversions  boolean,   -- IsEnhancedConversionsEnabled
    ADD COLUMN externally_attributed boolean;   -- IsExternallyAttributed

-- Sent only for externally attributed goals (ExternalAttributionCredit / Model).
ALTER TABLE msads.outbox
    ADD COLUMN attribution_credit numeric,
    ADD COLUMN attribution_model  text;

-- Microsoft refused an account's requests as a whole (HTTP errors, faults naming no item) since
-- this time; cleared by the next request it accepts. Read by `msads why`.
ALTER TABLE msads.accounts
    ADD COLUMN refused_since timestamptz,
    ADD COLUMN refusal       text;

-- The data contract's optional columns for externally attributed goals. Only a plain table is
-- altered: a view or foreign table keeps its columns, and the pipeline reads NULL for these.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{events_table}}')) IN ('r', 'p')
    THEN
        ALTER TABLE {{events_table}}
            ADD COLUMN IF NOT EXISTS external_attribution_credit numeric,
            ADD COLUMN IF NOT EXISTS external_attribution_model  text;
    END IF;
END $$;

INSERT INTO msads.reasons (reason, status, sentence, fix) VALUES
('outside_window', 'skipped', 'The event was more than 90 days old when it would have been uploaded; Microsoft accepts no older conversions.', 'Send events sooner; Microsoft cannot accept these. (The goal''s own conversion window counts from the click and is Microsoft''s to apply.)'),
('future_time', 'skipped', 'The event time is more than 5 minutes ahead of the pipeline''s clock.', 'Check event_time: a local time written as UTC lands in the future. Fix it, then replay.'),
('not_due_yet', 'deferred', 'The event time is a little ahead of now (clocks differ, or Microsoft said the time is in the future); it is held until its time has passed.', 'Nothing to do: it is sent automatically once its time has passed.'),
('no_time_zone', 'skipped', 'The event time has no time zone (the events table column is timestamp, not timestamptz), so the moment it happened is unknown.', 'Change the column to timestamptz (or write times with their offset), then replay.'),
('invalid_value', 'skipped', 'The value or currency cannot be sent (negative, not a number, too large, or a currency Microsoft does not take for conversions).', 'Write a non-negative value and a currency from Microsoft''s conversion goal revenue currencies, then replay.'),
('goal_paused', 'deferred', 'The conversion goal is paused in Microsoft Advertising, where it would count nothing; the event is held.', 'Enable the goal in Microsoft Advertising: held events are sent when it is active again within 7 days (after the next goal refresh); later, replay them.'),
('enhanced_conversions_off', 'skipped', 'The event has only a hashed email or phone (no click id), and the goal does not have enhanced conversions turned on, so Microsoft cannot use it.', 'Turn on enhanced conversions for the goal in the Microsoft Advertising web UI (the API cannot), run msads_refresh_goals, then replay; or fill msclkid.'),
('attribution_missing', 'skipped', 'The goal uses external attribution, and Microsoft then needs both an attribution credit and an attribution model; the event lacks one.', 'Fill external_attribution_credit (0 to 1) and external_attribution_model for events of this goal, then replay.'),
('attribution_invalid', 'skipped', 'The goal uses external attribution, and the event''s attribution credit is not a number between 0 and 1.', 'Write a credit between 0 and 1, then replay.'),
('refused', 'pending', 'Microsoft refused whole requests for the account (not this conversion''s own fault); it waits and is retried.', 'Check what the account''s last error says (msads why shows it); it is retried with backoff and fails after 24 hours, then replay.')
ON CONFLICT (reason) DO UPDATE SET status = EXCLUDED.status, sentence = EXCLUDED.sentence,
    fix = EXCLUDED.fix;
