"""Stage 4, upload: one account's ready conversions to Microsoft, at most 1,000 per call.

Before each call the rows are stamped as sent (a re-run after a crash knows they may be a
resend; Microsoft ignores duplicates of click id, time and goal). After it, each row gets its
outcome from Microsoft's batch errors by ``Index``: accepted → ``uploaded`` with the TrackingId;
rejected → ``rejected:<ErrorCode>``; 5615 → deferred (``goal_too_new``); 5612 → retried. A call
that fails as a whole leaves its rows pending with a next attempt (exponential backoff) until
24 hours of failures make them ``failed``. A sign-in failure stops the account for this run and
marks it ``auth_failed``; other accounts are untouched.

A big backlog is split into :class:`Part` s, ranges of event ids that several uploaders send at
once (:func:`accounts_with_work`, :mod:`include.msads_capi.pipeline.parallel`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from include.msads_capi.goals import set_account_status
from include.msads_capi.microsoft.client import MAX_CONVERSIONS_PER_CALL, AdsClient, UploadResult
from include.msads_capi.microsoft.faults import (
    AccountAuthError,
    AccountNotFoundError,
    MicrosoftError,
    TransientError,
)
from include.msads_capi.pipeline.config import PipelineConfig
from include.msads_capi.pipeline.store import delete_keys, update
from include.msads_capi.warehouse import Warehouse, connect, transaction

log = logging.getLogger(__name__)

RESULT_UPDATE = ("event_id", "account_id", "goal_id", "status", "reason", "detail", "ms_code",
                 "ms_error_code", "ms_message", "tracking_id", "next_attempt_at", "decided_at",
                 "sent_click_id", "sent_email", "sent_phone")
_BATCH = """
SELECT o.event_id, o.account_id, o.goal_id, o.customer_id, o.conversion_name, o.conversion_time,
       o.conversion_value, o.currency_code, o.click_id, o.email_sha256, o.phone_sha256,
       r.attempts, r.first_seen_at
FROM msads.outbox o JOIN msads.results r USING (event_id, account_id, goal_id)
WHERE o.account_id = %(a)s AND o.run_id = %(run)s AND o.hashed
  AND (o.event_id, o.goal_id) > (%(e)s, %(g)s){part}
ORDER BY o.event_id, o.goal_id
LIMIT %(n)s
FOR UPDATE OF o SKIP LOCKED
"""


@dataclass(frozen=True)
class Part:
    """One uploader's share of an account's outbox in a run: events after ``after`` up to and
    including ``upto`` (None: no bound). Parts of one account never overlap, so several
    processes can upload one account at once without sending a conversion twice."""

    after: str | None = None
    upto: str | None = None
    number: int = 1
    of: int = 1

    def sql(self, column: str = "o.event_id") -> str:
        """The part's bounds as SQL on ``column``, with %(after)s / %(upto)s parameters."""
        bounds = ([f" AND {column} > %(after)s"] if self.after is not None else []) + (
            [f" AND {column} <= %(upto)s"] if self.upto is not None else [])
        return "".join(bounds)

    def params(self) -> dict:
        return {"after": self.after, "upto": self.upto}

    @classmethod
    def of_entry(cls, entry: dict) -> Part:
        return cls(entry.get("after"), entry.get("upto"), entry.get("part", 1),
                   entry.get("parts", 1))


@dataclass
class UploadSummary:
    account_id: int
    outcomes: Counter = field(default_factory=Counter)
    calls: int = 0
    tracking_ids: list[str] = field(default_factory=list)
    stopped: str | None = None

    def as_dict(self) -> dict:
        return {"account_id": self.account_id, "outcomes": dict(self.outcomes),
                "calls": self.calls, "tracking_ids": self.tracking_ids[-5:],
                "stopped": self.stopped}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conversion(row: tuple) -> dict:
    """The OfflineConversion fields for one outbox row (None fields are left out)."""
    (_e, _a, _g, _c, name, when, value, currency, click, email, phone, _n, _f) = row
    return {"ConversionName": name, "ConversionTime": _iso(when),
            "ConversionValue": float(value) if value is not None else None,
            "ConversionCurrencyCode": currency if value is not None else None,
            "MicrosoftClickId": click, "HashedEmailAddress": email, "HashedPhoneNumber": phone}


def _flags(row: tuple) -> tuple[bool, bool, bool]:
    return row[8] is not None, row[9] is not None, row[10] is not None


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
        self._batch_sql = _BATCH.format(part=self.part.sql())
        self._conn = None

    @contextmanager
    def _tx(self) -> Iterator:
        """One transaction on the uploader's own connection, reconnecting when it was lost.

        The connection is in autocommit mode, so the liveness check leaves no transaction open
        and ``transaction()`` is a plain BEGIN/COMMIT.
        """
        import psycopg

        if self._conn is not None and not (self._conn.closed or self._conn.broken):
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
        the current one succeeded, and the current one is recorded while it runs."""
        self._started, self._go = time.monotonic(), True
        self._left: tuple[str, timedelta] | None = None
        self._error: BaseException | None = None
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
            if rows and _keep_going(error):
                current = (rows, pool.submit(self._send, rows))  # next call starts now...
            elif rows:
                self._left = self._left or ("Microsoft failed", timedelta(0))
            self._settle(sent, result, error)  # ...while this one is recorded
        if self._left:
            self._release(*self._left)
        if self._error is not None:
            raise self._error
        return self.summary

    def _send(self, rows: list[tuple]) -> UploadResult:
        return self.client.upload(self.account_id, rows[0][3], [conversion(r) for r in rows])

    def _next_batch(self) -> list[tuple]:
        if not self._go:
            return []
        if time.monotonic() - self._started > self.config.upload_budget_seconds:
            self._go, self._left = False, ("the run's upload time budget was spent",
                                           timedelta(0))
            return []
        rows = self._take_batch()
        if not rows:
            self._go = False
        return rows

    def _settle(self, rows: list[tuple], result: UploadResult | None,
                error: Exception | None) -> None:
        """Record what Microsoft said about one call, or what went wrong with it."""
        if error is None:
            self.summary.calls += 1
            self._record(rows, result)
            return
        if not _keep_going(error):
            self._go = False
        if isinstance(error, AccountAuthError):
            self._account_down(rows, "auth_failed", error)
            self._error = self._error or error
        elif isinstance(error, AccountNotFoundError):
            self._account_down(rows, "not_found", error)
        elif isinstance(error, TransientError):
            self._retry_later(rows, error)
            # the rest waits as long as the failed batch, not for the run's lease to pass
            self._left = ("Microsoft failed", self.config.retry_delay(1))
            self.summary.stopped = f"Microsoft failed: {error}"
        elif isinstance(error, MicrosoftError):
            self._reject_all(rows, error)
        else:
            raise error

    def _take_batch(self) -> list[tuple]:
        with self._tx() as conn:
            rows = conn.execute(self._batch_sql, {
                "a": self.account_id, "run": self.run_id, "e": self._after[0],
                "g": self._after[1], "n": MAX_CONVERSIONS_PER_CALL, **self.part.params()},
            ).fetchall()
            if rows:
                self._after = (rows[-1][0], rows[-1][2])
                keys = [r[:3] for r in rows]
                conn.execute(
                    "UPDATE msads.outbox o SET sent_at = %s FROM unnest(%s::text[], %s::bigint[], "
                    "%s::bigint[]) AS k(e, a, g) WHERE o.event_id = k.e AND o.account_id = k.a "
                    "AND o.goal_id = k.g", (self.clock(), *map(list, zip(*keys, strict=True))))
                conn.execute(
                    "UPDATE msads.results r SET attempts = attempts + 1 FROM unnest(%s::text[], "
                    "%s::bigint[], %s::bigint[]) AS k(e, a, g) WHERE r.event_id = k.e "
                    "AND r.account_id = k.a AND r.goal_id = k.g",
                    tuple(map(list, zip(*keys, strict=True))))
        return rows

    def _write(self, decided: list[tuple]) -> None:
        with self._tx() as conn:
            update(conn, "msads.results", RESULT_UPDATE, decided, touch_updated_at=True)
            delete_keys(conn, "msads.outbox", [d[:3] for d in decided])
        self.summary.outcomes.update(d[4] for d in decided)

    def _record(self, rows: list[tuple], result: UploadResult) -> None:
        now, decided = self.clock(), []
        if result.tracking_id:
            self.summary.tracking_ids.append(result.tracking_id)
        for row, out in zip(rows, result.outcomes, strict=True):
            key, flags = row[:3], _flags(row)
            if out.accepted:
                decided.append(key + ("uploaded", "uploaded", None, None, None, None,
                                      result.tracking_id, None, now) + flags)
            elif out.code == 5615:
                decided.append(key + ("deferred", "goal_too_new", out.message, out.code,
                                      out.error_code, out.message, result.tracking_id,
                                      now + self.config.goal_min_age, None) + flags)
            elif out.transient:
                decided.append(self._retry_row(row, now, out.code, out.error_code, out.message,
                                               result.tracking_id))
            else:
                decided.append(key + ("rejected", f"rejected:{out.error_code or out.code}",
                                      None, out.code, out.error_code, out.message,
                                      result.tracking_id, None, now) + flags)
        self._write(decided)

    def _retry_row(self, row: tuple, now: datetime, code, error_code, message,
                   tracking) -> tuple:
        attempts, first_seen = row[11] + 1, row[12]
        if first_seen + self.config.give_up_after <= now:
            return row[:3] + ("failed", "failed", f"gave up after {attempts} attempt(s)", code,
                              error_code, message, tracking, None, now) + _flags(row)
        next_at = now + self.config.retry_delay(attempts)
        return row[:3] + ("pending", "retry", f"attempt {attempts} failed; next at "
                          f"{next_at:%H:%M:%S} UTC", code, error_code, message, tracking,
                          next_at, None) + _flags(row)

    def _retry_later(self, rows: list[tuple], exc: MicrosoftError) -> None:
        now, first = self.clock(), exc.first
        self._write([self._retry_row(r, now, first.code if first else None,
                                     first.error_code if first else None, str(exc),
                                     exc.tracking_id) for r in rows])

    def _reject_all(self, rows: list[tuple], exc: MicrosoftError) -> None:
        now, first = self.clock(), exc.first
        code = first.code if first else None
        error = first.error_code if first else "RequestError"
        self._write([r[:3] + ("rejected", f"rejected:{error}", None, code, error, str(exc),
                              exc.tracking_id, None, now) + _flags(r) for r in rows])

    def _account_down(self, rows: list[tuple], status: str, exc: MicrosoftError) -> None:
        now = self.clock()
        with self._tx() as conn:
            set_account_status(conn, self.account_id, status, str(exc))
        self._write([r[:3] + ("deferred", "account_inactive", f"account {self.account_id} is "
                              f"{status}: {exc}", None, None, None, None,
                              now + self.config.hold_recheck, None) + _flags(r) for r in rows])
        self._release(f"account {self.account_id} is {status}")
        self.summary.stopped = f"account {status}: {exc}"

    def _release(self, why: str, delay: timedelta = timedelta(0)) -> None:
        """Hand what is left to the next run (it re-plans and re-hashes those rows)."""
        now = self.clock() + delay
        with self._tx() as conn:
            n = conn.execute(
                "UPDATE msads.results r SET next_attempt_at = %(at)s, updated_at = now() "
                "FROM msads.outbox o WHERE o.account_id = %(a)s AND o.run_id = %(run)s "
                "AND r.event_id = o.event_id AND r.account_id = o.account_id "
                "AND r.goal_id = o.goal_id AND r.status = 'pending'" + self.part.sql(),
                {"at": now, "a": self.account_id, "run": self.run_id,
                 **self.part.params()}).rowcount
        if n:
            log.info("account %s: %d conversion(s) left for the next run (%s)", self.account_id,
                     n, why)
            self.summary.outcomes["left_for_next_run"] += n


def _keep_going(error: Exception | None) -> bool:
    """After this outcome of a call, may the next batch go? Not after trouble with Microsoft
    or the account; yes after success, or after a request refused as a whole (its rows are
    recorded as rejected and the next request may well pass)."""
    if error is None:
        return True
    return isinstance(error, MicrosoftError) and not isinstance(
        error, AccountAuthError | AccountNotFoundError | TransientError)


def _sender(client: AdsClient) -> ThreadPoolExecutor:
    """The client's one upload thread: its SOAP client is built once and reused (0.5 s each)."""
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
    where = f" (part {part.number} of {part.of})" if part and part.of > 1 else ""
    log.info("account %s%s: %s", account_id, where, summary.as_dict())
    return summary


_PARTS = """
SELECT max(event_id), count(*)
FROM (SELECT event_id, ntile(%(k)s) OVER (ORDER BY event_id) AS part FROM msads.outbox
      WHERE account_id = %(a)s AND run_id = %(run)s AND hashed) o
GROUP BY part ORDER BY part
"""


def accounts_with_work(warehouse: Warehouse, run_id: str,
                       config: PipelineConfig | None = None) -> list[dict]:
    """What the mapped upload works on: each account with hashed conversions waiting in this
    run's outbox, split into up to ``config.upload_processes`` parts of consecutive events when
    it has at least ``config.part_min_conversions`` per part, so that several processes can
    upload it at once."""
    config = config or PipelineConfig()
    with transaction(warehouse) as conn:
        rows = conn.execute(
            "SELECT o.account_id, a.name, a.space_id, a.conn_id, count(*) FROM msads.outbox o "
            "JOIN msads.accounts a USING (account_id) WHERE o.run_id = %s AND o.hashed "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1", (run_id,)).fetchall()
        entries = []
        for a, name, space, conn_id, n in rows:
            k = max(1, min(config.upload_processes, n // max(1, config.part_min_conversions)))
            bounds, after = [], None
            for upto, count in (conn.execute(_PARTS, {"k": k, "a": a, "run": run_id})
                                if k > 1 else [(None, n)]):
                bounds.append((after, upto, count))
                after = upto
            title = f"{a} {name or ''}".strip()
            k = len(bounds)
            for number, (lower, upper, count) in enumerate(bounds, start=1):
                of = f", part {number} of {k}" if k > 1 else ""
                entries.append({"account_id": a, "conn_id": conn_id, "conversions": count,
                                "part": number, "parts": k, "after": lower,
                                "upto": upper if number < k else None,
                                "label": f"{title} ({space}, {count} conversions{of})"})
    return entries


__all__ = ["Part", "UploadSummary", "accounts_with_work", "upload_account"]
