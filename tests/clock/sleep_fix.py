"""Keep ``time.sleep`` working under libfaketime 0.9.10 (Debian 12) for ``make test-clock``.

Python 3.11 sleeps with ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline)``. With the
monotonic clock left real (``FAKETIME_DONT_FAKE_MONOTONIC=1``, which the shifted runs need so that
timeouts and lock waits keep working), libfaketime 0.9.10 still converts that deadline as if it
were faked time and hands the kernel a negative one: every ``time.sleep`` fails with EINVAL.
``tests/clock/shift.py`` runs this file at the start of every Python process of a shifted run;
when the bug shows, ``time.sleep`` waits with ``select`` on the real monotonic clock instead.
Without libfaketime, or with a libfaketime that sleeps correctly, it changes nothing.
"""

from __future__ import annotations

import select
import time


def _sleep(seconds: float) -> None:
    """``time.sleep`` on the monotonic clock, which libfaketime leaves alone here."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


def install() -> bool:
    """Replace ``time.sleep`` when it is broken; True when it was."""
    try:
        time.sleep(0)
    except OSError:
        time.sleep = _sleep
        return True
    return False


install()
