-- Microsoft's own view of every upload (docs/pipeline.md, "Did Microsoft count it?"), written by
-- the msads_reconcile DAG from the offline conversion reports. NULL until Microsoft reports it.
ALTER TABLE msads.results
    ADD COLUMN sent_ref            text,        -- a fingerprint of the id sent (click id, else a hash): finds it in Microsoft's reports; the id itself is not kept
    ADD COLUMN ms_status           text,        -- the report's Status: Success, or why the record failed; 'NotReported' once the report lag has passed without it
    ADD COLUMN ms_attributed       boolean,     -- counted: matched to a Microsoft click
    ADD COLUMN ms_unattributed     text,        -- Microsoft's reason when not (OfflineConversionUnattributedReason)
    ADD COLUMN ms_reported_at      timestamptz; -- when reconciliation last saw it in a report

CREATE INDEX results_reconcile_idx ON msads.results (account_id, decided_at) WHERE status = 'uploaded';

-- What Microsoft says per goal and upload day (GetOfflineConversionReportByGoalIds): the
-- totals msads report checks the per-conversion view against.
CREATE TABLE msads.goal_reports (
    account_id   bigint NOT NULL,
    goal_id      bigint NOT NULL,
    upload_day   date NOT NULL,
    succeeded    integer NOT NULL,
    unattributed integer NOT NULL,
    alerts       jsonb NOT NULL DEFAULT '{}',
    fetched_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, goal_id, upload_day)
);

-- An adjustment Microsoft accepted is an accepted adjustment, not a conversion.
CREATE OR REPLACE VIEW msads.adjustment_outcomes AS
SELECT r.adjustment_id, r.event_id, r.adjustment_type, r.account_id, r.goal_id,
       r.conversion_name, r.status, r.reason,
       CASE WHEN r.reason LIKE 'rejected:%'
            THEN 'Microsoft rejected the adjustment: ' || coalesce(r.ms_message, r.ms_error_code, r.reason)
            WHEN r.reason = 'uploaded'
            THEN 'Microsoft Advertising accepted the adjustment.'
            ELSE coalesce(x.sentence, r.reason) END AS explanation,
       r.detail, CASE WHEN r.reason = 'uploaded' THEN NULL ELSE x.fix END AS what_to_do,
       r.ms_code, r.ms_error_code, r.tracking_id, r.attempts,
       r.next_attempt_at, r.adjusted_at, r.adjusted_value, r.currency_code, r.decided_at, r.run_id
FROM msads.adjustment_results r
LEFT JOIN msads.reasons x ON x.reason = r.reason;
