"""Stage 4, upload: one account's ready conversions to Microsoft, at most 1,000 per call.

Before each call the rows are stamped as sent (a re-run after a crash knows they may be a
resend; Microsoft ignores duplicates of click id, time and goal). After it, each row gets its
outcome from Microsoft's batch errors by ``Index``: accepted → ``uploaded`` with the TrackingId;
rejected → ``rejected:<ErrorCode>``; 5615 → deferred (``goal_too_new``); 5614 → deferred
(``not_due_yet``); 0 and 5612 → retried. A call that fails as a whole leaves its rows pending
with a next attempt (exponential backoff) until 24 hours of failures make them ``failed``. A
sign-in failure stops the account for this run and marks it ``auth_failed``; other accounts are
untouched.

A request Microsoft refuses as a whole (an HTTP error such as 400 or 404, a fault that names no
item) is not the fault of the conversions in it. They wait (``refused``), and the request is
split in halves, down to single items, so that one malformed conversion cannot hold back the
others: only a conversion Microsoft refuses when sent alone, while other requests pass, is
rejected. When single conversions are refused the same way again and again with nothing
accepted in between, the fault is systemic: the account stops for this run (a circuit breaker),
everything waits with its next attempt, and the task fails with one line that says what to
check (:class:`AccountRefusedError`).

A big backlog is split into :class:`Part` s, ranges of event ids that several uploaders send at
once (:func:`accounts_with_work`, :mod:`include.msads_capi.pipeline.parallel`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from include.msads_capi import ledger
from include.msads_capi.errors import MsadsError
from include.msads_capi.goals.records import set_account_status
from include.msads_capi.ledger import Answered, OutboxRow
from include.msads_capi.microsoft.client import (
    MAX_CONVERSIONS_PER_CALL,
    AdsClient,
    UploadResult,
    sent_time,
)
from include.msads_capi.microsoft.faults import (
    AccountAuthError,
    AccountNotFoundError,
    MicrosoftError,
    RequestError,
)
from include.msads_capi.outcomes import (
    ACCOUNT_INACTIVE,
    FAILED,
    GOAL_TOO_NEW,
    NOT_DUE_YET,
    REFUSED,
    RETRY,
    UPLOADED,
    rejected,
)
from include.msads_capi.pipeline.adjustments import upload_adjustments
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.sql import query
from include.msads_capi.warehouse import Warehouse, connect, transaction

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Calls one refused request may take to find the conversions Microsoft refuses on their own
# (splitting 1,000 down to one takes 10 levels; a few bad items cost about 20 calls each).
SPLIT_CALLS = 64
# Single conversions refused the same way, with nothing accepted in between: systemic.
SYSTEMIC_AFTER = 3


class AccountRefusedError(MsadsError):
    """Microsoft refuses the account's requests as a whole, whatever is in them."""


@dataclass(frozen=True)
class Part:
    """One uploader's share of an account's outbox in a run: outbox rows of events after
    ``after`` up to and including ``upto`` (None: no bound); or, for an account with batches
    (``batched``), the batches after ``batches_after`` up to and including ``batches_upto``
    (batch ids, None: no bound), the rows unpacked from them, and, unless ``rows`` is False,
    the outbox rows of their own. Parts of one account never overlap, so several processes can
    upload one account at once without sending a conversion twice."""

    after: str | None = None
    upto: str | None = None
    number: int = 1
    of: int = 1
    rows: bool = True
    batched: bool = False
    batches_after: int | None = None
    batches_upto: int | None = None

    def sql(self) -> str:
        """The part's bounds on the outbox's ``o.event_id`` as SQL, with %(after)s / %(upto)s
        parameters."""
        bounds = ([" AND o.event_id > %(after)s"] if self.after is not None else []) + (
            [" AND o.event_id <= %(upto)s"] if self.upto is not None else [])
        return "".join(bounds)

    def batch_sql(self, column: str = "batch_id") -> str:
        """The part's bounds on batch ids (``column``) as SQL, with %(b_after)s / %(b_upto)s."""
        bounds = ([f" AND {column} > %(b_after)s"] if self.batches_after is not None else [])
        return "".join(bounds + ([f" AND {column} <= %(b_upto)s"]
                                 if self.batches_upto is not None else []))

    def release_sql(self) -> str:
        """The part's outbox rows, on the outbox's ``o``: within its event id bounds; or, for
        an account with batches, its rows of their own (when it has any) and the rows unpacked
        from its batches. The uploader takes these before its batches (those an earlier attempt
        of it left), and hands them on when it stops."""
        if not self.batched:
            return self.sql()
        unpacked = "o.batch_id IS NOT NULL" + self.batch_sql("o.batch_id")
        if not self.rows:
            return f" AND {unpacked}"
        return f" AND ((o.batch_id IS NULL{self.sql()}) OR ({unpacked}))"

    def params(self) -> dict:
        return {"after": self.after, "upto": self.upto, "b_after": self.batches_after,
                "b_upto": self.batches_upto}

    @classmethod
    def of_entry(cls, entry: dict) -> Part:
        return cls(entry.get("after"), entry.get("upto"), entry.get("part", 1),
                   entry.get("parts", 1), entry.get("rows", True), entry.get("batched", False),
                   entry.get("batches_after"), entry.get("batches_upto"))


@dataclass
class UploadSummary:
    account_id: int
    outcomes: Counter = field(default_factory=Counter)
    calls: int = 0
    tracking_ids: list[str] = field(default_factory=list)
    stopped: str | None = None
    adjustments: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"account_id": self.account_id, "outcomes": dict(self.outcomes),
                "calls": self.calls, "tracking_ids": self.tracking_ids[-5:],
                "stopped": self.stopped, "adjustments": dict(self.adjustments)}


def conversion(row: OutboxRow) -> dict:
    """The OfflineConversion fields for one outbox row as the client sends them (``ready``):
    the unset ones left out, the time aware UTC in whole seconds, numbers as floats. Built for
    1,000 rows a call: the fields a row has are added one by one."""
    fields = {"ConversionName": row.conversion_name,
              "ConversionTime": sent_time(row.conversion_time)}
    if row.conversion_value is not None:
        fields["ConversionValue"] = float(row.conversion_value)
        if row.currency_code is not None:
            fields["ConversionCurrencyCode"] = row.currency_code
    if row.click_id is not None:
        fields["MicrosoftClickId"] = row.click_id
    if row.email_sha256 is not None:
        fields["HashedEmailAddress"] = row.email_sha256
    if row.phone_sha256 is not None:
        fields["HashedPhoneNumber"] = row.phone_sha256
    if row.attribution_credit is not None:
        fields["ExternalAttributionCredit"] = float(row.attribution_credit)
    if row.attribution_model is not None:
        fields["ExternalAttributionModel"] = row.attribution_model
    return fields


def _decided(row: OutboxRow, status: str, reason: str, detail: str | None = None, *,
             error: tuple[int | None, str | None, str | None] = (None, None, None),
             tracking: str | None = None, next_at: datetime | None = None,
             decided_at: datetime | None = None) -> Answered:
    """The ledger update for one row taken for a call (counted as an attempt here, with the
    outcome, instead of by a write of its own before the call)."""
    return Answered(*row.key, status, reason, detail, *error, tracking, next_at, decided_at,
                    *row.flags, row.sent_ref, row.attempts + 1)


def _error_fields(exc: MicrosoftError) -> tuple[int | None, str | None, str]:
    """(ms_code, ms_error_code, ms_message) of an exception about a whole request."""
    first = exc.first
    code = first.code if first and first.code >= 0 else exc.http_status
    return code, (first.error_code if first else None) or exc.signature, str(exc)


class Uploader:
    """Uploads one account's outbox for one run."""

    def __init__(self, warehouse: Warehouse, client: AdsClient, account_id: int, run_id: str,
                 config: PipelineConfig, clock: Callable[[], datetime],
                 part: Part | None = None) -> None:
        self.warehouse, self.client = warehouse, client
        self.account_id, self.run_id = account_id, run_id
        self.config, self.clock = config, clock
        self.part = part or Part()
        self.summary = UploadSummary(account_id)
        self._after: tuple[str, int] = ("", 0)  # keyset: the last outbox key taken
        self._batch_sql = query("upload_batch").replace("{part}", self.part.release_sql())
        # the part's outbox rows are taken first, then its batches (by id)
        self._rows_done = False
        self._batch_after = self.part.batches_after or 0
        self._batches_sql = query("outbox_batch_read").replace(
            "{part}", " AND batch_id <= %(b_upto)s" if self.part.batches_upto is not None else "")
        self._conn = None
        # conversions refused when sent alone since the last accepted call: (row, error)
        self._alone: list[tuple[OutboxRow, RequestError]] = []
        self._refused_at: datetime | None = None  # first refusal since the last accepted call
        self._refused_since: datetime | None = None  # the account's, as recorded
        self._tripped: RequestError | None = None  # the circuit breaker's cause

    @contextmanager
    def _tx(self) -> Iterator:
        """One transaction on the uploader's own connection, reconnecting when it was lost.

        The connection is in autocommit mode, so the liveness check leaves no transaction open
        and ``transaction()`` is a plain BEGIN/COMMIT. The check is a round trip only when the
        server has sent something unasked on the idle connection (a shutdown notice, or its
        end): a ``SELECT 1`` before every transaction cost up to 5 ms each while the upload
        thread held the interpreter, about 9 µs per conversion uploaded.
        """
        import psycopg

        if self._conn is not None and not (self._conn.closed or self._conn.broken) \
                and _spoken(self._conn):
            try:
                self._conn.execute("SELECT 1")
            except psycopg.OperationalError:  # the server restarted or dropped us
                self.close()
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.warehouse, autocommit=True)
        try:
            with self._conn.transaction():
                yield self._conn
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run(self) -> UploadSummary:
        """Upload batch after batch, one call in flight at a time. While a call is with
        Microsoft, the next batch is taken from the warehouse; the next call starts as soon as
        the current one succeeded, and the current one is recorded while it runs. A request
        refused as a whole is taken apart before the next one goes."""
        self._started, self._go = time.monotonic(), True
        # what is left goes to the next run: (why, delay, reason, detail)
        self._left: tuple[str, timedelta, str | None, str | None] | None = None
        self._error: BaseException | None = None
        with self._tx() as conn:
            self._refused_since = conn.execute(
                "SELECT refused_since FROM msads.accounts WHERE account_id = %s",
                (self.account_id,)).fetchone()[0]
        pool = _sender(self.client)
        rows = self._next_batch()
        current = (rows, pool.submit(self._send, rows)) if rows else None
        while current is not None:
            rows = self._next_batch()  # overlaps the call in flight
            sent, future = current
            try:
                result, error = future.result(), None
            except Exception as exc:  # classified in _settle
                result, error = None, exc
            current = None
            if getattr(sent, "batches", None) and (
                    error is not None or not all(o.accepted for o in result.outcomes)):
                self._unpack(sent)  # not accepted whole: its conversions go on one by one
            if isinstance(error, RequestError):
                self._isolate(pool, sent, error)  # may stop the account
            if rows and self._go and _keep_going(error):
                current = (rows, pool.submit(self._send, rows))  # next call starts now...
            elif rows:
                self._left = self._left or ("Microsoft failed", timedelta(0), None, None)
            if not isinstance(error, RequestError):
                self._settle(sent, result, error)  # ...while this one is recorded
        if self._alone:  # refused alone, and nothing accepted since: not known to be theirs
            self._wait([row for row, _ in self._alone], self._alone[-1][1])
            self._alone.clear()
        released = self._release(*self._left) if self._left else 0
        if self._tripped is not None:
            self._error = self._error or self._refused_error(
                self._tripped, released + self.summary.outcomes[REFUSED])
        if self._error is not None:
            raise self._error
        return self.summary

    def _send(self, rows: list[OutboxRow]) -> UploadResult:
        return self.client.upload(self.account_id, rows[0].customer_id,
                                  [conversion(r) for r in rows], ready=True)

    def _next_batch(self) -> list[OutboxRow]:
        if not self._go:
            return []
        if time.monotonic() - self._started > self.config.upload_budget_seconds:
            self._go, self._left = False, ("the run's upload time budget was spent",
                                           timedelta(0), None, None)
            return []
        rows = self._take_batch()
        if not rows:
            self._go = False
        return rows

    def _settle(self, rows: list[OutboxRow], result: UploadResult | None,
                error: Exception | None) -> None:
        """Record what Microsoft said about one call, or what went wrong with it."""
        if error is None:
            self.summary.calls += 1
            self._accepted()
            self._record(rows, result)
            return
        if not _keep_going(error):
            self._go = False
        if isinstance(error, AccountAuthError):
            self._account_down(rows, "auth_failed", error)
            self._error = self._error or error
        elif isinstance(error, AccountNotFoundError):
            self._account_down(rows, "not_found", error)
        elif isinstance(error, MicrosoftError):  # transient: busy, unreachable, 5xx
            self._retry_later(rows, error)
            # the rest waits as long as the failed batch, not for the run's lease to pass
            self._left = ("Microsoft failed", self.config.retry_delay(1), None, None)
            self.summary.stopped = f"Microsoft failed: {error}"
        else:  # a bug in our code: fail the task, never retry it as if Microsoft failed
            raise error

    # ---------------------------------------------------------------- refused requests

    def _isolate(self, pool: ThreadPoolExecutor, rows: list[OutboxRow],
                 error: RequestError) -> None:
        """Microsoft refused ``rows`` as a whole. Send them again in smaller requests (halves,
        down to single conversions, at most :data:`SPLIT_CALLS` calls) to record what it
        accepts and find what it refuses on its own; everything else waits."""
        self._refused_at = self._refused_at or self.clock()
        work: deque[tuple[list[OutboxRow], RequestError | None]] = deque([(rows, error)])
        calls = 0
        while work:
            part, refused = work.popleft()
            if refused is not None:
                named = self._named(part, refused)
                if named:  # Microsoft named the items at fault: theirs; the others go again
                    rest = [r for r in part if r.key not in named]
                    self._write([self._rejected(r, named[r.key], refused) for r in part
                                 if r.key in named])
                    if rest:
                        work.appendleft((rest, None))
                elif len(part) == 1:
                    self._refused_alone(part[0], refused)
                    if self._tripped is not None:  # systemic: stop
                        break
                else:
                    middle = len(part) // 2
                    work.appendleft((part[middle:], None))
                    work.appendleft((part[:middle], None))
                continue
            if calls >= SPLIT_CALLS:
                work.appendleft((part, None))
                break
            calls += 1
            try:
                result = pool.submit(self._send, part).result()
            except RequestError as again:
                work.appendleft((part, again))
                continue
            except Exception as other:  # busy, signed out, a bug: as for any call
                self._settle(part, None, other)
                break
            self._settle(part, result, None)
        left = [r for part, _ in work for r in part]
        if left:
            self._wait(left, error)
        log.warning("account %s: Microsoft refused a request of %d conversion(s) as a whole "
                    "(%s); sent again in %d smaller request(s)", self.account_id, len(rows),
                    error.signature, calls)

    @staticmethod
    def _named(rows: list[OutboxRow], error: RequestError) -> dict[tuple, tuple]:
        """The items a refusal names by index (a fault's BatchErrors): their keys → error."""
        named = {}
        for e in error.errors:
            if e.index is not None and 0 <= e.index < len(rows):
                named.setdefault(rows[e.index].key, (e.code, e.error_code, e.message))
        return named

    def _rejected(self, row: OutboxRow, err: tuple, exc: RequestError) -> Answered:
        code, error_code, message = err
        return _decided(row, "rejected", rejected(error_code or code), None,
                        error=(code, error_code, message), tracking=exc.tracking_id,
                        decided_at=self.clock())

    def _refused_alone(self, row: OutboxRow, error: RequestError) -> None:
        """A conversion refused when sent alone. Its own fault once another call passes; if
        several are refused the same way with nothing accepted in between, no item is at
        fault: trip the circuit breaker."""
        self._alone.append((row, error))
        same = {r.key for r, e in self._alone if e.signature == error.signature}
        if len(same) >= SYSTEMIC_AFTER:
            self._trip(error)

    def _accepted(self) -> None:
        """Microsoft accepted a call: what it refused alone before was the items' own fault,
        and the account is no longer refused."""
        if self._alone:
            now = self.clock()
            self._write([_decided(row, "rejected", rejected(_error_fields(e)[1]),
                                  "Microsoft refused this conversion when it was sent alone, "
                                  "while it accepted other requests",
                                  error=_error_fields(e), tracking=e.tracking_id, decided_at=now)
                         for row, e in self._alone])
            self._alone.clear()
        self._refused_at = None
        if self._refused_since is not None:
            with self._tx() as conn:
                conn.execute("UPDATE msads.accounts SET refused_since = NULL, refusal = NULL, "
                             "updated_at = now() WHERE account_id = %s", (self.account_id,))
            self._refused_since = None

    def _trip(self, error: RequestError) -> None:
        """Systemic: record the refusal on the account, keep everything waiting, stop."""
        with self._tx() as conn:
            (since,) = conn.execute(
                "UPDATE msads.accounts SET refused_since = COALESCE(refused_since, %s), "
                "refusal = %s, updated_at = now() WHERE account_id = %s RETURNING refused_since",
                (self._refused_at or self.clock(), f"{error.signature}: {error}",
                 self.account_id)).fetchone()
        self._refused_since, self._tripped, self._go = since, error, False
        self._wait([row for row, _ in self._alone], error)
        self._alone.clear()
        self._left = (f"Microsoft refuses every request ({error.signature})",
                      self.config.retry_delay(1), REFUSED, self._refusal_detail(error))
        self.summary.stopped = f"Microsoft refuses every request: {error.signature}"

    def _refused_error(self, error: RequestError, waiting: int) -> AccountRefusedError:
        return AccountRefusedError(
            f"account {self.account_id}: Microsoft Advertising has refused whole requests since "
            f"{self._refused_since:%Y-%m-%d %H:%M} UTC ({error.signature}: {error}); {waiting} "
            "conversion(s) wait and are retried with backoff, none was rejected. Check that "
            "msads-capi is current (Microsoft retires API versions and endpoints) and that the "
            "account can be reached; msads why EVENT_ID shows the last answer")

    def _refusal_detail(self, error: RequestError) -> str:
        since = self._refused_since or self._refused_at or self.clock()
        return (f"waiting: Microsoft refused whole requests since {since:%Y-%m-%d %H:%M} UTC "
                f"({error.signature}: {error})")

    def _wait(self, rows: list[OutboxRow], error: RequestError) -> None:
        """Rows refused as part of whole requests: pending, retried with backoff."""
        now, detail = self.clock(), self._refusal_detail(error)
        self._write([self._retry_row(r, now, _error_fields(error), error.tracking_id,
                                     reason=REFUSED, detail=detail) for r in rows])

    # ---------------------------------------------------------------- the ledger

    def _take_batch(self) -> list[OutboxRow]:
        """The next conversions to send: the part's outbox rows by keyset, then its batches,
        as many as fit in one call."""
        if not self._rows_done:
            rows = self._take_rows()
            if rows:
                return rows
            self._rows_done = True
        return self._take_from_batches()

    def _take_from_batches(self) -> list[OutboxRow]:
        with self._tx() as conn:
            got = conn.execute(self._batches_sql, {
                **self.part.params(), "a": self.account_id, "run": self.run_id,
                "last": self._batch_after, "n": MAX_CONVERSIONS_PER_CALL},
                binary=True).fetchall()
        rows, account = _Batch(), self.account_id
        for batch_id, customer_id, *columns in got:
            rows.extend(OutboxRow(event, account, goal, customer_id, name, at, value, currency,
                                  click, email, phone, credit, model, 0, first, True)
                        for event, goal, name, at, value, currency, click, email, phone,
                        credit, model, first in zip(*columns, strict=True))
            rows.batches.append(batch_id)
            self._batch_after = batch_id
        return rows

    def _unpack(self, rows: _Batch) -> None:
        """The batches ``rows`` came from become one outbox row per conversion, so that the
        rules for outbox rows decide each of them."""
        with self._tx() as conn:
            ledger.unpack_batches(conn, ledger.UNPACK_SENT, {"batches": rows.batches})
        rows.batches = []

    def _take_rows(self) -> list[OutboxRow]:
        with self._tx() as conn:
            rows = [OutboxRow._make(r) for r in conn.execute(self._batch_sql, {
                "a": self.account_id, "run": self.run_id, "e": self._after[0],
                "g": self._after[1], "n": MAX_CONVERSIONS_PER_CALL, **self.part.params()},
            ).fetchall()]
            if rows:
                self._after = (rows[-1].event_id, rows[-1].goal_id)
        return rows

    def _write(self, decided: list[Answered], accepted: Sequence[OutboxRow] = (),
               tracking: str | None = None, now: datetime | None = None) -> None:
        """Record ``decided`` and the ``accepted`` conversions of one call (with its
        ``tracking`` id, at ``now``) in one transaction, and count them. The accepted ones go
        without staging: a batch accepted whole from the batch (:func:`ledger.record_batch`),
        outbox rows by :func:`ledger.record_uploaded`; one whose outbox row is gone meanwhile
        is recorded with the others."""
        if not decided and not accepted:
            return
        batches = getattr(accepted, "batches", None)
        with self._tx() as conn:
            if batches and ledger.record_batch(conn, batches, accepted, tracking, now):
                left = []
            else:
                if batches:  # gone, or a row there after all: one by one
                    ledger.unpack_batches(conn, ledger.UNPACK_SENT, {"batches": batches})
                left = ledger.record_uploaded(conn, accepted, tracking, now) if accepted else []
            decided = decided + [_decided(row, "uploaded", UPLOADED, tracking=tracking,
                                          decided_at=now) for row in left]
            if decided:
                ledger.record(conn, "upload", decided)
        if accepted:
            self.summary.outcomes[UPLOADED] += len(accepted) - len(left)
        self.summary.outcomes.update(d.reason for d in decided)

    def _record(self, rows: list[OutboxRow], result: UploadResult) -> None:
        now, decided, accepted, tracking = self.clock(), [], [], result.tracking_id
        if tracking:
            self.summary.tracking_ids.append(tracking)
        for row, out in zip(rows, result.outcomes, strict=True):
            error = (out.code, out.error_code, out.message)
            if out.accepted:
                accepted.append(row)
            elif out.code == 5615:
                decided.append(_decided(row, "deferred", GOAL_TOO_NEW, out.message,
                                        error=error, tracking=tracking,
                                        next_at=now + self.config.goal_min_age))
            elif out.code == 5614:  # Microsoft's clock says the time has not come yet
                decided.append(self._retry_row(
                    row, now, error, tracking, status="deferred", reason=NOT_DUE_YET,
                    detail="Microsoft said the conversion time is in the future; it is sent "
                           "again once that time has passed",
                    not_before=row.conversion_time))
            elif out.transient:
                decided.append(self._retry_row(row, now, error, tracking))
            else:
                decided.append(_decided(row, "rejected", rejected(out.error_code or out.code),
                                        error=error,
                                        tracking=tracking, decided_at=now))
        if getattr(rows, "batches", None):  # batches accepted whole
            accepted = rows
        self._write(decided, accepted, tracking, now)

    def _retry_row(self, row: OutboxRow, now: datetime, error: tuple, tracking: str | None, *,
                   status: str = "pending", reason: str = RETRY, detail: str | None = None,
                   not_before: datetime | None = None) -> Answered:
        """Try again later with backoff; after 24 hours of trying, ``failed``."""
        attempts = row.attempts + 1
        next_at = self.config.next_attempt(attempts, row.first_seen_at, now)
        if next_at is None:
            return _decided(row, "failed", FAILED, f"gave up after {attempts} attempt(s)"
                            + (f"; {detail}" if detail else ""), error=error, tracking=tracking,
                            decided_at=now)
        if not_before is not None:
            next_at = max(next_at, not_before + self.config.retry_base)
        return _decided(row, status, reason, detail or f"attempt {attempts} failed; next at "
                        f"{next_at:%H:%M:%S} UTC", error=error, tracking=tracking,
                        next_at=next_at)

    def _retry_later(self, rows: list[OutboxRow], exc: MicrosoftError) -> None:
        now, first = self.clock(), exc.first
        error = (first.code if first else None, first.error_code if first else None, str(exc))
        self._write([self._retry_row(r, now, error, exc.tracking_id) for r in rows])

    def _account_down(self, rows: list[OutboxRow], status: str, exc: MicrosoftError) -> None:
        now = self.clock()
        with self._tx() as conn:
            set_account_status(conn, self.account_id, status, str(exc))
        self._write([_decided(r, "deferred", ACCOUNT_INACTIVE, f"account {self.account_id} "
                              f"is {status}: {exc}", next_at=now + self.config.hold_recheck)
                     for r in rows])
        self._release(f"account {self.account_id} is {status}", timedelta(0), None, None)
        self.summary.stopped = f"account {status}: {exc}"

    def _release(self, why: str, delay: timedelta, reason: str | None,
                 detail: str | None) -> int:
        """Hand what is left to the next run (it re-plans and re-hashes those rows), after
        ``delay``, with ``reason`` and ``detail`` when they say more than ``ready``."""
        params = {
            "at": self.clock() + delay, "a": self.account_id, "run": self.run_id,
            "reason": reason, "detail": detail, **self.part.params()}
        with self._tx() as conn:
            # the part's batches not sent become outbox rows, and are released with them
            ledger.unpack_batches(conn, ledger.UNPACK_LEFT.replace(
                "{part}", self.part.batch_sql()), params)
            n = conn.execute(query("outbox_release").replace("{part}", self.part.release_sql()),
                             params).rowcount
        if n:
            log.info("account %s: %d conversion(s) left for the next run (%s)", self.account_id,
                     n, why)
            self.summary.outcomes["left_for_next_run"] += n
        return n


class _Batch(list):
    """The conversions of the ``batches`` taken for one call, in their order; ``batches``
    empty once they are unpacked into outbox rows."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []


def _spoken(conn: psycopg.Connection) -> bool:
    """Whether the server sent something on an idle connection: nothing is asked of it between
    transactions, so that is a notice, most likely that it is shutting down, or the connection's
    end."""
    import select

    return bool(select.select([conn.fileno()], [], [], 0)[0])


def _keep_going(error: Exception | None) -> bool:
    """After this outcome of a call, may the next batch go? Yes after success, or after a
    request refused as a whole (taken apart, and the next may well pass); not after trouble
    with Microsoft or the account, or a bug."""
    return error is None or isinstance(error, RequestError)


def _sender(client: AdsClient) -> ThreadPoolExecutor:
    """The client's one upload thread: its REST clients are per thread, so they are built once
    and keep their connections open across calls."""
    pool = getattr(client, "_upload_sender", None)
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msads-upload")
        client._upload_sender = pool
    return pool


def upload_account(warehouse: Warehouse, client: AdsClient, account_id: int, run_id: str,
                   config: PipelineConfig, clock: Callable[[], datetime] | None = None,
                   part: Part | None = None) -> UploadSummary:
    clock = clock or (lambda: datetime.now(UTC))
    uploader = Uploader(warehouse, client, account_id, run_id, config, clock, part)
    try:
        summary = uploader.run()
    finally:
        uploader.close()
    if part is None or part.number == 1:
        # refunds and cancellations go after the account's conversions, by its first part
        summary.adjustments = upload_adjustments(warehouse, client, account_id, run_id, config,
                                                 clock)
    where = f" (part {part.number} of {part.of})" if part and part.of > 1 else ""
    log.info("account %s%s: %s", account_id, where, summary.as_dict())
    return summary


def accounts_with_work(warehouse: Warehouse, run_id: str,
                       config: PipelineConfig | None = None) -> list[dict]:
    """What the mapped upload works on: each account with hashed conversions waiting in this
    run's outbox, split into up to ``config.upload_processes`` parts when it has at least
    ``config.part_min_conversions`` per part, so that several processes can upload it at once.
    Parts are of consecutive events, or, when the account has batches (new events), of
    consecutive batches, with every outbox row of its own in the first part."""
    config = config or PipelineConfig()
    with transaction(warehouse) as conn:
        rows = conn.execute(query("upload_accounts"), {"run": run_id}).fetchall()
        entries = []
        for a, name, space, conn_id, n, batched, _adjusting in rows:
            k = max(1, min(config.upload_processes,
                           (n + batched) // max(1, config.part_min_conversions)))
            if batched:
                parts = _batch_parts(conn, a, run_id, k, n)
            else:
                parts, after = [], None
                for upto, count in (conn.execute(query("upload_parts"),
                                                 {"k": k, "a": a, "run": run_id})
                                    if k > 1 else [(None, n)]):
                    parts.append({"after": after, "upto": upto, "conversions": count})
                    after = upto
                parts[-1]["upto"] = None
            title = f"{a} {name or ''}".strip()
            for number, part in enumerate(parts, start=1):
                of = f", part {number} of {len(parts)}" if len(parts) > 1 else ""
                entries.append({"account_id": a, "conn_id": conn_id, **part,
                                "part": number, "parts": len(parts),
                                "label": f"{title} ({space}, {part['conversions']} "
                                         f"conversions{of})"})
    return entries


def _batch_parts(conn: psycopg.Connection, account_id: int, run_id: str, k: int,
                 rows: int) -> list[dict]:
    """An account's batches in ``k`` parts of consecutive batches; the first part takes its
    ``rows`` outbox rows of their own as well, the others none."""
    parts, after = [], None
    for upto, count in conn.execute(query("upload_batch_parts"),
                                    {"k": k, "a": account_id, "run": run_id}):
        parts.append({"rows": not parts, "batched": True, "batches_after": after,
                      "batches_upto": upto,
                      "conversions": int(count) + (rows if not parts else 0)})
        after = upto
    parts[-1]["batches_upto"] = None
    return parts


__all__ = ["Part", "UploadSummary", "accounts_with_work", "upload_account"]
