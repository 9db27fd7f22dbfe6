-- Claim what no channel took earlier (alerts.release put it back): open incidents whose alert
-- did not go out, and ended ones whose recovery did not, while their alert did. SKIP LOCKED:
-- a row another worker is deciding right now is its business.
WITH opened AS (
    UPDATE msads.alerts SET opened_sent_at = %(now)s
    WHERE alert_id IN (SELECT alert_id FROM msads.alerts
                       WHERE resolved_at IS NULL AND opened_sent_at IS NULL
                       FOR UPDATE SKIP LOCKED)
    RETURNING alert_id, key, kind, subject, message, opened_at, seen, resolved_at, resolution,
              opened_sent_at, false AS recovery
), resolved AS (
    UPDATE msads.alerts SET resolved_sent_at = %(now)s
    WHERE alert_id IN (SELECT alert_id FROM msads.alerts
                       WHERE resolved_at IS NOT NULL AND opened_sent_at IS NOT NULL
                         AND resolved_sent_at IS NULL
                       FOR UPDATE SKIP LOCKED)
    RETURNING alert_id, key, kind, subject, message, opened_at, seen, resolved_at, resolution,
              opened_sent_at, true AS recovery
)
SELECT * FROM opened UNION ALL SELECT * FROM resolved ORDER BY opened_at, alert_id
