"""Every outcome the ledger can record, in one table: the one owner of the outcome vocabulary.

Each reason has its code (what ``msads.results.reason`` holds), its status, the sentence a person
reads, the fix, and whether the replay DAG may send such events again. The plan, hash and upload
stages, replay, ``msads why``, the summary and ``docs/pipeline.md`` all use this table; the
``msads.reasons`` table that analysts join against is written from it on every ``msads migrate``
(:func:`sync`), and a test fails if the docs' outcome table differs from it.

Microsoft's own refusals of one conversion are ``rejected:<ErrorCode>`` (:func:`rejected`):
their sentence is Microsoft's message, so they are not listed one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from include.msads_capi.sql import query

if TYPE_CHECKING:
    import psycopg

STATUSES = ("pending", "uploaded", "skipped", "deferred", "rejected", "failed")


@dataclass(frozen=True)
class Reason:
    status: str
    sentence: str
    fix: str | None
    replay: bool = False  # may the msads_replay DAG send such events again?


CLAIMED = "claimed"
READY = "ready"
RETRY = "retry"
REFUSED = "refused"
UPLOADED = "uploaded"
EVENT_DELETED = "event_deleted"
CAPI_OFF = "capi_off"
NOT_MAPPED = "not_mapped"
GOAL_MISSING = "goal_missing"
ACCOUNT_INACTIVE = "account_inactive"
GOAL_PAUSED = "goal_paused"
NOT_ATTRIBUTED = "not_attributed"
NO_IDENTIFIER = "no_identifier"
ENHANCED_CONVERSIONS_OFF = "enhanced_conversions_off"
GOAL_TOO_NEW = "goal_too_new"
NO_TIME_ZONE = "no_time_zone"
OUTSIDE_WINDOW = "outside_window"
FUTURE_TIME = "future_time"
NOT_DUE_YET = "not_due_yet"
INVALID_VALUE = "invalid_value"
ATTRIBUTION_MISSING = "attribution_missing"
ATTRIBUTION_INVALID = "attribution_invalid"
FAILED = "failed"
# adjustments (refunds and cancellations of uploaded conversions)
ADJUSTMENT_DELETED = "adjustment_deleted"
ORIGINAL_NOT_UPLOADED = "original_not_uploaded"
INVALID_ADJUSTMENT = "invalid_adjustment"
ADJUSTMENT_BEFORE_CONVERSION = "adjustment_before_conversion"
ADJUSTMENT_IN_FUTURE = "adjustment_in_future"
ALREADY_RETRACTED = "already_retracted"
RESTATE_AFTER_RETRACT = "restate_after_retract"
SUPERSEDED = "superseded"

REASONS: dict[str, Reason] = {
    CLAIMED: Reason(
        'pending', 'The pipeline has picked the event up and is deciding what to do with it.',
        None),
    READY: Reason(
        'pending', 'The conversion is ready and waits for the next upload to Microsoft.',
        None),
    RETRY: Reason(
        'pending', 'Microsoft could not be reached or was busy; the upload will be retried.',
        'Nothing to do: it is retried with backoff, and fails after 24 hours of errors.'),
    REFUSED: Reason(
        'pending', ("Microsoft refused whole requests for the account (not this conversion's own fault); "
         'it waits and is retried.'),
        ("Check what the account's last error says (msads why shows it); it is retried with "
         'backoff and fails after 24 hours, then replay.'), replay=True),
    UPLOADED: Reason(
        'uploaded', 'Microsoft Advertising accepted the conversion.',
        'Microsoft can take up to 24 hours to show it in reports.'),
    EVENT_DELETED: Reason(
        'skipped', 'The event was deleted from the events table before it could be sent.',
        None, replay=True),
    CAPI_OFF: Reason(
        'skipped', ("Microsoft CAPI was off for the event's Space when the event arrived, so it was not "
         'sent.'),
        ('Turn it on with: msads capi on --space SPACE (events that arrived while it was off '
         'are not sent later; use the msads_replay DAG to send them).'), replay=True),
    NOT_MAPPED: Reason(
        'skipped', "No enabled mapping sends this event name to a Microsoft goal in the event's Space.",
        ('Map it with: msads map add --account ACCOUNT --goal GOAL --event EVENT_NAME, then '
         'replay.'), replay=True),
    GOAL_MISSING: Reason(
        'skipped', ('The mapped goal does not exist in Microsoft Advertising (deleted, renamed, or not '
         'fetched yet).'),
        'Check msads map list; fix or re-create the mapping, refresh goals, then replay.', replay=True),
    ACCOUNT_INACTIVE: Reason(
        'deferred', 'The Microsoft ad account is not active (paused, not found, or its sign-in failed).',
        ('Reactivate or reconnect the account (msads auth status); held events are sent if it '
         'is active again within 7 days.'), replay=True),
    GOAL_PAUSED: Reason(
        'deferred', ('The conversion goal is paused in Microsoft Advertising, where it would count '
         'nothing; the event is held.'),
        ('Enable the goal in Microsoft Advertising: held events are sent when it is active '
         'again within 7 days (after the next goal refresh); later, replay them.'), replay=True),
    NOT_ATTRIBUTED: Reason(
        'skipped', ('The mapping sends only events attributed to Microsoft, and this event was attributed'
         ' elsewhere.'),
        'Switch the mapping to send rule all if every event should be sent.', replay=True),
    NO_IDENTIFIER: Reason(
        'skipped', ('The event has no usable Microsoft click id, email or phone, and Microsoft needs at '
         'least one.'),
        'Fill msclkid, email or phone for such events.', replay=True),
    ENHANCED_CONVERSIONS_OFF: Reason(
        'skipped', ('The event has only a hashed email or phone (no click id), and the goal does not have'
         ' enhanced conversions turned on, so Microsoft cannot use it.'),
        ('Turn on enhanced conversions for the goal in the Microsoft Advertising web UI (the '
         'API cannot), run msads_refresh_goals, then replay; or fill msclkid.'), replay=True),
    GOAL_TOO_NEW: Reason(
        'deferred', ('The goal was created less than 2 hours ago; Microsoft does not accept conversions '
         'for it yet.'),
        'Nothing to do: it is sent automatically once the goal is 2 hours old.'),
    NO_TIME_ZONE: Reason(
        'skipped', ('The event time has no time zone (the events table column is timestamp, not '
         'timestamptz), so the moment it happened is unknown.'),
        'Change the column to timestamptz (or write times with their offset), then replay.', replay=True),
    OUTSIDE_WINDOW: Reason(
        'skipped', ('The event was more than 90 days old when it would have been uploaded; Microsoft '
         'accepts no older conversions.'),
        ("Send events sooner; Microsoft cannot accept these. (The goal's own conversion window"
         " counts from the click and is Microsoft's to apply.)"), replay=True),
    FUTURE_TIME: Reason(
        'skipped', "The event time is more than 5 minutes ahead of the pipeline's clock.",
        ('Check event_time: a local time written as UTC lands in the future. Fix it, then '
         'replay.'), replay=True),
    NOT_DUE_YET: Reason(
        'deferred', ('The event time is a little ahead of now (clocks differ, or Microsoft said the time '
         'is in the future); it is held until its time has passed.'),
        'Nothing to do: it is sent automatically once its time has passed.'),
    INVALID_VALUE: Reason(
        'skipped', ('The value or currency cannot be sent (negative, not a number, too large, or a '
         'currency Microsoft does not take for conversions).'),
        ("Write a non-negative value and a currency from Microsoft's conversion goal revenue "
         'currencies, then replay.'), replay=True),
    ATTRIBUTION_MISSING: Reason(
        'skipped', ('The goal uses external attribution, and Microsoft then needs both an attribution '
         'credit and an attribution model; the event lacks one.'),
        ('Fill external_attribution_credit (0 to 1) and external_attribution_model for events '
         'of this goal, then replay.'), replay=True),
    ATTRIBUTION_INVALID: Reason(
        'skipped', ("The goal uses external attribution, and the event's attribution credit is not a "
         'number between 0 and 1.'),
        'Write a credit between 0 and 1, then replay.', replay=True),
    FAILED: Reason(
        'failed', 'Microsoft kept failing for 24 hours, so the pipeline stopped trying.',
        'See the last error; after it is fixed, replay with the msads_replay DAG.', replay=True),
    ADJUSTMENT_DELETED: Reason(
        'skipped', 'The adjustment was deleted from the adjustments table before it could be sent.',
        None),
    ORIGINAL_NOT_UPLOADED: Reason(
        'skipped', ('The conversion this adjustment changes was never uploaded to Microsoft, so there '
                    'is nothing to restate or retract; while the conversion is still pending, the '
                    'adjustment waits for it (up to 24 hours).'),
        ('Nothing, if the conversion was rightly not sent (msads why EVENT_ID says why); if it '
         'is sent later, insert the adjustment again with a new adjustment_id.')),
    INVALID_ADJUSTMENT: Reason(
        'skipped', ('The adjustment cannot be sent: its type is not restate or retract, or a restate '
                    'has no value.'),
        ("Write adjustment_type 'restate' with adjusted_value, or 'retract' without one, as a new "
         'row with a new adjustment_id.')),
    ADJUSTMENT_BEFORE_CONVERSION: Reason(
        'skipped', ('The adjustment time is earlier than the conversion it changes; Microsoft refuses '
                    'such adjustments.'),
        'Check adjusted_at (a local time written as UTC moves it), then insert a corrected row.'),
    ADJUSTMENT_IN_FUTURE: Reason(
        'skipped', "The adjustment time is more than 5 minutes ahead of the pipeline's clock.",
        ('Check adjusted_at: a local time written as UTC lands in the future. Insert a '
         'corrected row with a new adjustment_id.')),
    ALREADY_RETRACTED: Reason(
        'skipped', 'The conversion was already retracted, so a second retraction changes nothing.',
        None),
    RESTATE_AFTER_RETRACT: Reason(
        'skipped', ('The conversion was retracted before this restatement; Microsoft does not restate '
                    'a retracted conversion.'),
        'If the sale stands after all, send it as a new event with a new event_id.'),
    SUPERSEDED: Reason(
        'skipped', ('A later restatement or a retraction of the same conversion replaces this one, '
                    'so only the latest is sent.'),
        None),
}

REJECTED = "rejected"  # every rejected:<ErrorCode>, as replay and the CLI name them together
REJECTED_PREFIX = "rejected:"


def rejected(error_code: str | int | None) -> str:
    """The reason for a conversion Microsoft refused on its own: ``rejected:<ErrorCode>``."""
    return f"{REJECTED_PREFIX}{error_code}"


def words(reason: str) -> tuple[str, str | None]:
    """The sentence and the fix a person reads for a reason code, ``rejected:<ErrorCode>`` too
    (its own message is per conversion: ``msads why`` shows it)."""
    if reason.startswith(REJECTED_PREFIX):
        code = reason[len(REJECTED_PREFIX):]
        return (f"Microsoft Advertising refused these conversions ({code}).",
                "Look at one with msads why EVENT_ID for Microsoft's message; fix the events, "
                "then send them again with the msads_replay DAG (outcomes: rejected).")
    known = REASONS.get(reason)
    return (known.sentence, known.fix) if known else (reason, None)


def status_of(reason: str) -> str:
    return "rejected" if reason.startswith(REJECTED_PREFIX) else REASONS[reason].status


# What replay may send again (``rejected`` stands for every rejected:<ErrorCode>), and what it
# sends when nobody says.
REPLAYABLE = tuple(code for code, r in REASONS.items() if r.replay) + (REJECTED,)
REPLAY_DEFAULT = (NOT_MAPPED, GOAL_MISSING, ACCOUNT_INACTIVE, FAILED)

def sync(conn: psycopg.Connection) -> None:
    """Write the table into ``msads.reasons`` (the explanations analysts and views join)."""
    with conn.cursor() as cur:
        cur.executemany(query("reasons_upsert"), [(code, r.status, r.sentence, r.fix)
                                                  for code, r in REASONS.items()])
