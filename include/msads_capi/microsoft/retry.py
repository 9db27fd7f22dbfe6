"""Bounded retries with backoff and jitter; sleeping and randomness are injectable for tests."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from include.msads_capi.microsoft.faults import MicrosoftError, TransientError, classify

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How long to keep trying transient failures before handing them back to the caller.

    Throttling (117) waits at least ``throttle_delay`` seconds, as Microsoft asks; other transient
    errors back off exponentially from ``base_delay``, capped at ``max_delay``. Both get jitter.
    Nothing loops forever: at most ``max_attempts`` calls and ``max_total_wait`` seconds of waits.
    """

    max_attempts: int = 4
    base_delay: float = 2.0
    max_delay: float = 120.0
    throttle_delay: float = 60.0
    max_total_wait: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, error: TransientError) -> float:
        if error.retry_after:
            return max(error.retry_after, self.throttle_delay) * (1 + 0.25 * self.rand())
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff * (0.5 + 0.5 * self.rand())

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Call ``fn`` until it succeeds, a non-transient error occurs, or the budget is spent."""
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:  # classified below; non-transient ones are re-raised
                error = classify(exc)
                if error is None:  # a bug in our code: never retried
                    raise
                if not isinstance(error, TransientError):
                    if error is exc:
                        raise
                    raise error from exc
                wait = self.delay(attempt, error)
                if attempt >= self.max_attempts or waited + wait > self.max_total_wait:
                    log.warning("%s: giving up after %d attempt(s): %s", what, attempt, error)
                    raise error from (None if error is exc else exc)
                log.warning("%s: attempt %d failed (%s); retrying in %.0f s", what, attempt,
                            error, wait)
                waited += wait
                self.sleep(wait)


__all__ = ["RetryPolicy", "MicrosoftError"]
