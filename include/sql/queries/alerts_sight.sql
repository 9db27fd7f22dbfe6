-- An incident was seen: open it, or count one more sighting of the open one (the latest text
-- wins). The row stays locked until the caller commits: a second worker seeing the same
-- incident waits here, then finds the alert already claimed.
INSERT INTO msads.alerts AS a (key, kind, subject, message, opened_at, last_seen_at)
VALUES (%(key)s, %(kind)s, %(subject)s, %(message)s, %(now)s, %(now)s)
ON CONFLICT (key) WHERE resolved_at IS NULL DO UPDATE
    SET seen = a.seen + 1, subject = EXCLUDED.subject, message = EXCLUDED.message,
        last_seen_at = GREATEST(a.last_seen_at, EXCLUDED.last_seen_at)
RETURNING alert_id, opened_sent_at IS NULL AS unannounced
