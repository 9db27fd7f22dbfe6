"""The ledger: one row per (event, account, goal) in ``msads.results``, and the outbox of
conversions on their way to Microsoft in ``msads.outbox`` and ``msads.outbox_batches``.

Rows are typed here, and every stage writes them through this module.

The life of a ledger row (``status`` and ``reason``; every reason is in :mod:`outcomes`):

- **claim** takes new events, late ones and rows due again (``deferred``, ``pending retry``, or a
  claim whose lease ran out) as ``pending claimed``: a placeholder per event (goal 0), or the
  event's goal rows;
- **plan** turns them into ``pending ready`` rows with an outbox row each, or decides them
  ``skipped`` / ``deferred``. A new event's conversion that is ready to send goes to a batch
  only (:func:`write_ready`, a call's worth a row): it is pending in the outbox alone
  (``msads.outbox_pending``), and its ledger row is written once, when it is decided;
- **hash** adds the identifiers' hashes to the outbox row, or decides it ``skipped`` /
  ``deferred``;
- **upload** records Microsoft's answer: ``uploaded``, ``rejected``, ``deferred``,
  ``pending retry`` or, after a day of trying, ``failed``;
- **replay** reopens chosen ``skipped`` / ``rejected`` / ``failed`` rows for the next run.

Claims and replay are set-based SQL (``include/sql/queries``, ``pipeline/replay.py``); the plan,
hash and upload stages write the rows below with :func:`plan_rows`, :func:`record` and
:func:`mark_hashed`, which refuse a status their stage may not write (:data:`WRITES`).

The writes are bulk: COPY into a staging table, then one upsert or update (:func:`record`:
one insert of the decided rows, with what their outbox rows carried, that updates those a
ledger row exists for). Conversions Microsoft accepted, most of what is recorded, need no
staging: :func:`record_batch` writes a call's batches accepted whole from the batches
themselves, and :func:`record_uploaded` outbox rows from their keys, sent as arrays. A batch
not accepted whole is unpacked into outbox rows first (:func:`unpack_batches`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from include.msads_capi.outcomes import READY, UPLOADED
from include.msads_capi.sql import query

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import tzinfo

    import pandas as pd
    import psycopg

RESULT_KEY = ("event_id", "account_id", "goal_id")
Key = tuple[str, int, int]

#: The statuses each stage may write.
WRITES = {"plan": frozenset({"pending", "skipped", "deferred"}),
          "hash": frozenset({"skipped", "deferred"}),
          # skipped: an adjustment overtaken, right before sending, by a newer one sent first
          "upload": frozenset({"uploaded", "rejected", "deferred", "pending", "failed",
                               "skipped"})}


class Planned(NamedTuple):
    """A ledger row as the plan stage writes it: the whole row."""

    event_id: str
    account_id: int
    goal_id: int
    space_id: str | None
    event_name: str | None
    status: str
    reason: str
    detail: str | None
    next_attempt_at: datetime | None
    decided_at: datetime | None
    conversion_name: str | None
    conversion_time: datetime | None
    conversion_value: float | None
    currency_code: str | None
    run_id: str
    claimed_at: datetime
    first_seen_at: datetime
    attempts: int


class Outgoing(NamedTuple):
    """An outbox row as the plan stage writes it: what will be sent, hashes still to come."""

    event_id: str
    account_id: int
    goal_id: int
    customer_id: int
    run_id: str
    conversion_name: str
    conversion_time: datetime
    conversion_value: float | None
    currency_code: str | None
    click_id: str | None
    email_sha256: str | None
    phone_sha256: str | None
    hashed: bool
    preflight_reason: str | None
    preflight_detail: str | None
    defer_until: datetime | None
    sent_at: datetime | None  # no longer written: an attempt is counted with its outcome
    attribution_credit: float | None
    attribution_model: str | None
    # what the ledger row gets when the conversion is decided (a new event has none before)
    space_id: str | None
    event_name: str | None
    claimed_at: datetime | None
    first_seen_at: datetime | None
    attempts: int  # calls that carried it so far (the ledger row's; 0 for a new event)


#: What a ledger row written by :func:`record` takes from its outbox row.
CARRIED = ("space_id", "event_name", "conversion_name", "conversion_time", "conversion_value",
           "currency_code", "run_id", "claimed_at", "first_seen_at")


class ReadyFrames(NamedTuple):
    """The plan stage's rows of conversions that passed every check, as frames with the
    columns of :class:`Planned` and :class:`Outgoing` (``None`` when there are none)."""

    ledger: pd.DataFrame | None
    outbox: pd.DataFrame | None

    @property
    def count(self) -> int:
        return 0 if self.ledger is None else len(self.ledger)


class Hashed(NamedTuple):
    """The hash stage's update of an outbox row: the identifiers' SHA-256 hashes."""

    event_id: str
    account_id: int
    goal_id: int
    email_sha256: str | None
    phone_sha256: str | None
    hashed: bool


class Decided(NamedTuple):
    """A ledger update that decides a row before anything is sent (the hash stage)."""

    event_id: str
    account_id: int
    goal_id: int
    status: str
    reason: str
    detail: str | None
    next_attempt_at: datetime | None
    decided_at: datetime | None


class Answered(NamedTuple):
    """A ledger update after Microsoft answered (or could not be asked): the upload stage."""

    event_id: str
    account_id: int
    goal_id: int
    status: str
    reason: str
    detail: str | None
    ms_code: int | None
    ms_error_code: str | None
    ms_message: str | None
    tracking_id: str | None
    next_attempt_at: datetime | None
    decided_at: datetime | None
    sent_click_id: bool
    sent_email: bool
    sent_phone: bool
    sent_ref: str | None  # finds it in Microsoft's per-record reports (reference())
    attempts: int  # calls that carried it, this one included


class OutboxRow(NamedTuple):
    """One conversion ready to send, as the upload reads it from the outbox."""

    event_id: str
    account_id: int
    goal_id: int
    customer_id: int
    conversion_name: str
    conversion_time: datetime
    conversion_value: Decimal | None
    currency_code: str | None
    click_id: str | None
    email_sha256: str | None
    phone_sha256: str | None
    attribution_credit: Decimal | None
    attribution_model: str | None
    attempts: int
    first_seen_at: datetime
    unrecorded: bool = False  # a new event: no ledger row when it was planned

    @property
    def key(self) -> Key:
        return self.event_id, self.account_id, self.goal_id

    @property
    def flags(self) -> tuple[bool, bool, bool]:
        """Which identifiers were sent (the ledger keeps these, never the values)."""
        return (self.click_id is not None, self.email_sha256 is not None,
                self.phone_sha256 is not None)

    @property
    def sent_ref(self) -> str | None:
        """The conversion's reference (:func:`reference`) from the id it is sent with."""
        return reference(self.click_id or self.email_sha256 or self.phone_sha256)


class Adjusting(NamedTuple):
    """An adjustment's ledger row as the plan stage writes it (``msads.adjustment_results``):
    its outcome, or what will be sent for one (account, goal) its original was uploaded to."""

    adjustment_id: str
    account_id: int
    goal_id: int
    event_id: str
    adjustment_type: str | None
    status: str
    reason: str
    detail: str | None
    next_attempt_at: datetime | None
    decided_at: datetime | None
    customer_id: int | None
    conversion_name: str | None
    conversion_time: datetime | None
    click_id: str | None
    need_email: bool
    need_phone: bool
    adjusted_at: datetime | None
    adjusted_value: float | None
    currency_code: str | None
    run_id: str
    claimed_at: datetime
    first_seen_at: datetime


class AdjustmentHashed(NamedTuple):
    """The hash stage's update of an adjustment row about to be sent."""

    adjustment_id: str
    account_id: int
    goal_id: int
    email_sha256: str | None
    phone_sha256: str | None
    hashed: bool


class AdjustmentDecided(NamedTuple):
    """A ledger update that decides an adjustment row (hash or upload stage)."""

    adjustment_id: str
    account_id: int
    goal_id: int
    status: str
    reason: str
    detail: str | None
    ms_code: int | None
    ms_error_code: str | None
    ms_message: str | None
    tracking_id: str | None
    next_attempt_at: datetime | None
    decided_at: datetime | None


ADJUSTMENT_KEY = ("adjustment_id", "account_id", "goal_id")


def plan_adjustments(conn: psycopg.Connection, rows: Sequence[Adjusting],
                     expanded: Sequence[str]) -> None:
    """The plan stage's adjustment rows; the placeholders of ``expanded`` adjustments (now one
    row per goal) go."""
    _allowed("plan", rows)
    if expanded:
        conn.execute("DELETE FROM msads.adjustment_results WHERE adjustment_id = ANY(%s) "
                     "AND account_id = 0 AND goal_id = 0", (list(expanded),))
    upsert(conn, "msads.adjustment_results", Adjusting._fields, rows, ADJUSTMENT_KEY,
           touch_updated_at=True)


def mark_adjustments_hashed(conn: psycopg.Connection, rows: Sequence[AdjustmentHashed]) -> None:
    update(conn, "msads.adjustment_results", AdjustmentHashed._fields, rows, ADJUSTMENT_KEY)


def record_adjustments(conn: psycopg.Connection, stage: str,
                       rows: Sequence[AdjustmentDecided]) -> None:
    """Decide adjustment rows (hash or upload stage)."""
    if not rows:
        return
    _allowed(stage, rows)
    update(conn, "msads.adjustment_results", AdjustmentDecided._fields, rows, ADJUSTMENT_KEY,
           touch_updated_at=True)
    # a decided adjustment is not sent again: its hashes, like the outbox's, do not stay
    done = [r for r in rows if r.status in ("uploaded", "rejected", "skipped", "failed")]
    if done:
        conn.execute("UPDATE msads.adjustment_results r SET email_sha256 = NULL, "
                     "phone_sha256 = NULL FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) "
                     "AS k(i, a, g) WHERE r.adjustment_id = k.i AND r.account_id = k.a "
                     "AND r.goal_id = k.g", ([r.adjustment_id for r in done],
                                              [r.account_id for r in done],
                                              [r.goal_id for r in done]))


def reference(sent: str | None) -> str | None:
    """A fingerprint of the id a conversion was sent with (its click id, else its email or phone
    hash): how reconciliation finds it in Microsoft's per-record reports. The ledger keeps this,
    never the hash itself, which stays only in what is sent to Microsoft."""
    if not sent:
        return None
    return hashlib.sha256(f"msads-ref:{sent.strip().lower()}".encode()).hexdigest()[:24]


def _allowed(stage: str, rows: Sequence[NamedTuple]) -> None:
    wrong = {r.status for r in rows} - WRITES[stage]  # type: ignore[attr-defined]
    if wrong:
        raise ValueError(f"the {stage} stage may not write ledger status(es) {sorted(wrong)}")


def plan_rows(conn: psycopg.Connection, rows: Sequence[Planned], outbox: Sequence[Outgoing],
              *, replanned: Sequence[Key] = (), ready: ReadyFrames | None = None,
              new_only: bool = False, batch_size: int = 1000) -> None:
    """The plan stage's writes: ledger rows, and the outbox rows of what may be sent (replacing
    any an earlier run left for rows planned again); ``ready`` adds rows built as frames: ledger
    rows that are all ``pending ready``, and outbox rows.

    ``new_only``: every row is new (new events). A conversion ready to send then waits in the
    outbox alone, in a batch of up to ``batch_size`` (:func:`write_ready`), and its ledger row
    is written when it is decided (:func:`record`); only the rows decided here go to the
    ledger. A row that exists raises ``UniqueViolation`` instead of
    being replaced: another run took the event, and its rows are neither changed nor locked."""
    _allowed("plan", rows)
    if new_only:
        rows = [r for r in rows if (r.status, r.reason) != ("pending", READY)]
    upsert(conn, "msads.results", Planned._fields, rows, touch_updated_at=True,
           insert_only=new_only)
    take_out(conn, replanned)
    upsert(conn, "msads.outbox", Outgoing._fields, outbox, insert_only=new_only)
    if ready is not None and ready.count and not new_only:
        if set(ready.ledger["status"].unique()) != {"pending"}:
            raise ValueError("the plan stage's frames hold only pending rows")
        insert_new(conn, "msads.results", Planned._fields, ready.ledger, replanned,
                   touch_updated_at=True, insert_only=new_only)
    if ready is not None and ready.outbox is not None and len(ready.outbox):
        if new_only and not replanned:
            write_ready(conn, ready.outbox, batch_size)
        else:
            insert_new(conn, "msads.outbox", Outgoing._fields, ready.outbox, replanned,
                       insert_only=new_only)


# What goes out in batches (0019_outbox_batches.sql): a new event's conversion, hashed, on its
# first attempt, held by no later check. Anything else waits as an outbox row of its own.
_BATCHED = ("COALESCE(s.hashed AND s.preflight_reason IS NULL AND s.defer_until IS NULL "
            "AND s.attempts = 0 AND s.first_seen_at = s.claimed_at, false)")


def write_ready(conn: psycopg.Connection, frame: pd.DataFrame, size: int) -> None:
    """The outbox of a chunk of new events (a frame with :class:`Outgoing`'s columns): the
    conversions ready to send as batches of up to ``size`` per account, anything else as
    outbox rows. Only inserted: an outbox row that exists raises ``UniqueViolation``
    (another run took the event; the plan stage's transaction also checks the cursor)."""
    stage = _stage_table(conn, "msads.outbox", Outgoing._fields, "ready")
    _copy_frame(conn, stage, Outgoing._fields, frame)
    conn.execute(query("outbox_batch_write").replace("{stage}", stage)
                 .replace("{batched}", _BATCHED), {"size": size})
    cols = ", ".join(Outgoing._fields)
    conn.execute(f"WITH s AS (DELETE FROM {stage} RETURNING *) INSERT INTO msads.outbox "
                 f"({cols}) SELECT {cols} FROM s WHERE NOT {_BATCHED}")


def record_batch(conn: psycopg.Connection, batches: Sequence[int], rows: Sequence[OutboxRow],
                 tracking_id: str | None, decided_at: datetime) -> bool:
    """Decide the batches of a call Microsoft accepted whole (``rows``: their conversions, in
    the call's order): each conversion ``uploaded`` as :func:`record_uploaded` writes it, and
    the batches deleted (``include/sql/queries/outbox_batch_record.sql``). False, with nothing
    written, when a batch is gone (taken over meanwhile) or one of the conversions has a ledger
    row after all: then unpack them (:func:`unpack_batches`) and record the rows one by one."""
    import psycopg

    params = {"batches": list(batches), "ref": [r.sent_ref for r in rows], "reason": UPLOADED,
              "tracking": tracking_id, "at": decided_at}
    try:
        with conn.transaction():  # a savepoint: a row there after all undoes only this
            if conn.execute(query("outbox_batch_record"), params).rowcount != len(rows):
                raise ValueError  # a batch gone: undo, and go one by one
    except (psycopg.errors.UniqueViolation, ValueError):
        return False
    return True


#: Which batches :func:`unpack_batches` unpacks: a call's; a run's for one account, within an
#: uploader's part (``{part}``: :meth:`Part.batch_sql`); those whose run's lease has passed.
UNPACK_SENT = "batch_id = ANY (%(batches)s)"
UNPACK_LEFT = "account_id = %(a)s AND run_id = %(run)s{part}"
UNPACK_STALE = "claimed_at < %(stale_before)s"


def unpack_batches(conn: psycopg.Connection, which: str, params: dict) -> list[Key]:
    """Turn batches into one outbox row per conversion (``which``: :data:`UNPACK_SENT`,
    :data:`UNPACK_LEFT` or :data:`UNPACK_STALE`); the keys of the rows made."""
    return conn.execute(query("outbox_batch_unpack").replace("{which}", which),
                        params).fetchall()


def mark_hashed(conn: psycopg.Connection, rows: Sequence[Hashed] | pd.DataFrame) -> None:
    """The hash stage's outbox updates (tuples, or a frame with :class:`Hashed`'s columns)."""
    update(conn, "msads.outbox", Hashed._fields, rows)


def record(conn: psycopg.Connection, stage: str, rows: Sequence[Decided] | Sequence[Answered],
           ) -> None:
    """Decide ledger rows and take them out of the outbox (they are not sent, or not again).

    A conversion of a new event has no ledger row until now: its row is written here whole,
    with what its outbox row carried (:data:`CARRIED`). A row planned again has one, and gets
    the decision. Either way it is one write of the ledger, and one round trip.

    The ledger is never joined here: its rows are found by the insert's conflict check on the
    primary key, and outbox rows by their keys (``outbox_take_out``); the only join is of the
    staged rows with the outbox rows taken out, both of them this call's."""
    if not rows:
        return
    _allowed(stage, rows)
    columns = type(rows[0])._fields
    staged, n = _stage(conn, "msads.results", columns, rows, "upd")
    if not n:
        return
    carried = [c for c in CARRIED if c not in columns]
    values = [f"s.{c}" for c in columns] + [
        "COALESCE(o.first_seen_at, now())" if c == "first_seen_at" else f"o.{c}"
        for c in carried]
    decided = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in RESULT_KEY)
    conn.execute(f"WITH s AS (DELETE FROM {staged} RETURNING *), "
                 f"o AS ({query('outbox_take_out')} RETURNING *) "
                 f"INSERT INTO msads.results ({', '.join([*columns, *carried])}) "
                 f"SELECT {', '.join(values)} FROM s LEFT JOIN o "
                 "ON o.event_id = s.event_id AND o.account_id = s.account_id "
                 "AND o.goal_id = s.goal_id "
                 f"ON CONFLICT (event_id, account_id, goal_id) DO UPDATE SET {decided}, "
                 "updated_at = now()")


def record_uploaded(conn: psycopg.Connection, rows: Sequence[OutboxRow],
                    tracking_id: str | None, decided_at: datetime) -> list[OutboxRow]:
    """Decide conversions Microsoft accepted: ``uploaded``, with its TrackingId, one more
    attempt, and which identifiers were sent; the rows that are not recorded here.

    What :func:`record` writes for them, in one statement without a staging table
    (``include/sql/queries/record_uploaded.sql``): most calls' rows are all accepted, and
    everything else they need is in their outbox rows. A row whose outbox row is gone (another
    run took it over meanwhile) is returned, for :func:`record`."""
    import psycopg

    if not rows:
        return []
    sql = query("record_uploaded").replace("{take_out}", query("outbox_take_out"))
    params = {"e": [r.event_id for r in rows], "a": [r.account_id for r in rows],
              "g": [r.goal_id for r in rows], "ref": [r.sent_ref for r in rows],
              "reason": UPLOADED, "tracking": tracking_id, "at": decided_at}
    done = None
    if all(r.unrecorded for r in rows):  # new events: no conflict check (record_uploaded.sql)
        try:
            with conn.transaction():  # a savepoint: a row there after all undoes only this
                done = conn.execute(sql.replace("{on_conflict}", ""), params).fetchall()
        except psycopg.errors.UniqueViolation:
            done = None
    if done is None:
        done = conn.execute(sql.replace("{on_conflict}", query("record_uploaded_again")),
                            params).fetchall()
    if len(done) == len(rows):
        return []
    recorded = set(done)
    return [r for r in rows if r.key not in recorded]


def upsert(conn: psycopg.Connection, table: str, columns: Sequence[str],
           rows: Iterable[tuple] | pd.DataFrame, key: Sequence[str] = RESULT_KEY, *,
           touch_updated_at: bool = False, insert_only: bool = False) -> int:
    """Insert or update ``rows`` (tuples in ``columns`` order, or a frame with those columns)
    into ``table`` by ``key``; ``insert_only``: insert, and a row that exists raises
    ``UniqueViolation``."""
    stage, n = _stage(conn, table, columns, rows, "ins")
    if not n:
        return 0
    cols = ", ".join(columns)
    updates = [c for c in columns if c not in key]
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    if touch_updated_at:
        assignments += ", updated_at = now()"
    conflict = "" if insert_only else (f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                                       f"{assignments}")
    conn.execute(f"WITH s AS (DELETE FROM {stage} RETURNING *) INSERT INTO {table} ({cols}) "
                 f"SELECT {cols} FROM s{conflict}")
    return n


def insert_new(conn: psycopg.Connection, table: str, columns: Sequence[str],
               frame: pd.DataFrame, existing: Sequence[Key] = (), *,
               touch_updated_at: bool = False, insert_only: bool = False) -> None:
    """Write a frame of rows keyed by :data:`RESULT_KEY`, most of them new to ``table``.

    Rows whose key is in ``existing`` (planned again) are upserted; the rest are copied
    straight into ``table``, without a staging table: about half the database's work of an
    upsert. Should one of them exist after all (a row left by hand, or a concurrent writer),
    the copy is undone to its savepoint and the rows are upserted instead, so nothing fails
    and nothing is written twice; with ``insert_only``, it raises ``UniqueViolation``.
    """
    import pandas as pd
    import psycopg

    if existing:
        again = pd.MultiIndex.from_frame(frame[list(RESULT_KEY)]).isin(list(existing))
        if again.any():
            upsert(conn, table, columns, frame[again], touch_updated_at=touch_updated_at)
            frame = frame[~again]
    if not len(frame):
        return
    if insert_only:  # a row that exists raises UniqueViolation
        _copy_frame(conn, table, columns, frame)
        return
    try:
        with conn.transaction():
            _copy_frame(conn, table, columns, frame)
    except psycopg.errors.UniqueViolation:
        upsert(conn, table, columns, frame, touch_updated_at=touch_updated_at)


def _stage(conn: psycopg.Connection, table: str, columns: Sequence[str],
           rows: Iterable[tuple] | pd.DataFrame, kind: str) -> tuple[str, int]:
    """COPY rows into a session temp table shaped like ``table``; (its name, row count).

    Tuples go by binary COPY, typed by the stage's own columns: for our rows of timestamps and
    numbers about 5x less work per row than text. What text COPY would have stored is kept:
    floats bound for a ``numeric`` column go as the decimal they print as, and naive times are
    read in the session's time zone (UTC for the product's connections). A frame goes whole,
    as CSV written by Arrow (:func:`_copy_frame`), with the same meaning.
    """
    if not isinstance(rows, list | tuple) and hasattr(rows, "columns"):
        if not len(rows):
            return "", 0
        stage = _stage_table(conn, table, columns, kind)
        _copy_frame(conn, stage, columns, rows)
        return stage, len(rows)
    rows = list(rows)
    if not rows:
        return "", 0
    cols = ", ".join(columns)
    stage = _stage_table(conn, table, columns, kind)
    made = _MADE[conn]
    types = made[stage]
    if types is None:  # once per connection and stage: a round trip each time cost ~5 µs a row
        types = made[stage] = [_BINARY_AS.get(d.type_code, d.type_code) for d in conn.execute(
            f"SELECT {cols} FROM {stage} LIMIT 0").description]
    fix = [(i, _decimal) for i, oid in enumerate(types) if oid == _NUMERIC] + [
        (i, _aware(conn.info.timezone)) for i, oid in enumerate(types) if oid == _TIMESTAMPTZ]
    with conn.cursor().copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            if fix:
                row = list(row)
                for i, convert in fix:
                    if row[i] is not None:
                        row[i] = convert(row[i])
            copy.write_row(row)
    return stage, len(rows)


# connection → its stages → their column types for binary COPY (None until first asked)
_MADE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stage_table(conn: psycopg.Connection, table: str, columns: Sequence[str], kind: str) -> str:
    """A session temp table with ``table``'s ``columns``, made once per connection.

    The statement that reads a stage empties it (``WITH s AS (DELETE FROM stage RETURNING *)``,
    in :func:`upsert` and :func:`update`), and it empties itself at every commit as well
    (``ON COMMIT DELETE ROWS``, which truncates the file in place). So it is found empty
    without a TRUNCATE, which writes the catalog and cost ~10-30 ms a call, as much as the
    upsert of 1,000 rows itself. Staged rows live only as long as their transaction, so this
    needs one.
    """
    from psycopg import pq

    stage = f"_{kind}_{table.replace('.', '_')}_{abs(hash(tuple(columns))) % 10**8}"
    made = _MADE.setdefault(conn, {})
    if stage not in made:
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT "
                     f"{', '.join(columns)} FROM {table} WITH NO DATA")
        made[stage] = None
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise RuntimeError("bulk ledger writes need a transaction: use warehouse.transaction()")
    return stage


def _copy_frame(conn: psycopg.Connection, stage: str, columns: Sequence[str],
                frame: pd.DataFrame) -> None:
    """COPY a frame's ``columns`` into ``stage`` as CSV that Arrow writes in one pass.

    Arrow's CSV has what PostgreSQL's CSV reads back unchanged: a null is an empty field and a
    string is always quoted (so an empty string stays one), aware times end in ``Z``, naive
    ones are read in the session's time zone as text COPY would, and a float is written as the
    shortest decimal that reads back as it (as :func:`_decimal`). An object column Arrow cannot
    type on its own (Decimals among floats) goes as floats.
    """
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    arrays = []
    for name in columns:
        column = frame[name]
        try:
            array = pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = pa.array(pd.to_numeric(column, errors="raise").astype("float64"),
                             from_pandas=True)
        if pa.types.is_timestamp(array.type) and array.type.tz is not None:
            # the same text Arrow's CSV writes for an aware time, about 4x faster: it formats
            # with the zone database per value, even for UTC; the stored instants are UTC
            array = pc.binary_join_element_wise(
                array.cast(pa.timestamp(array.type.unit)).cast(pa.string()), "Z", "")
        arrays.append(array)
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_arrays(arrays, names=list(columns)), buffer,
                     pa_csv.WriteOptions(include_header=False))
    with conn.cursor().copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN "
                            "(FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())


# pg_type oids. char(n) goes as text (the same bytes in binary).
_NUMERIC, _TIMESTAMPTZ, _BINARY_AS = 1700, 1184, {1042: 25}


def _decimal(value: Decimal | float | int) -> Decimal:
    """A float as the decimal it prints as (what text COPY stored); ints and Decimals as such."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)


def _aware(zone: tzinfo) -> Callable[[datetime], datetime]:
    """Naive times read in the session's time zone, as text COPY would (aware ones unchanged)."""
    def convert(value: datetime) -> datetime:
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    return convert


def take_out(conn: psycopg.Connection, keys: Iterable[tuple]) -> None:
    """Delete outbox rows by (event_id, account_id, goal_id), each found by its key
    (``include/sql/queries/outbox_take_out.sql``)."""
    keys = list(keys)
    if not keys:
        return
    events, accounts, goals = zip(*keys, strict=True)
    events, accounts, goals = list(events), [int(a) for a in accounts], [int(g) for g in goals]
    conn.execute("WITH s AS (SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) "
                 "AS k(event_id, account_id, goal_id)) " + query("outbox_take_out"),
                 (events, accounts, goals))


def update(conn: psycopg.Connection, table: str, columns: Sequence[str],
           rows: Iterable[tuple] | pd.DataFrame, key: Sequence[str] = RESULT_KEY, *,
           touch_updated_at: bool = False) -> int:
    """Update existing rows of ``table`` from ``rows`` (tuples in ``columns`` order, or a frame
    with those columns) by ``key``."""
    stage, n = _stage(conn, table, columns, rows, "upd")
    if not n:
        return 0
    sets = ", ".join(f"{c} = s.{c}" for c in columns if c not in key)
    if touch_updated_at:
        sets += ", updated_at = now()"
    where = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return conn.execute(f"WITH s AS (DELETE FROM {stage} RETURNING *) "
                        f"UPDATE {table} t SET {sets} FROM s WHERE {where}").rowcount
