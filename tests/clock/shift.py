"""Run the time-sensitive tests again with the clock moved (``make test-clock``).

Two runs under libfaketime, so that Python, every process it starts and the embedded PostgreSQL
the test session starts all see the moved time:

* ``ahead``: 45 days ahead (``FAKETIME=+45d``);
* ``dst``: in America/New_York, starting a minute before the zone's next daylight-saving
  change (``--dst back`` or ``--dst forward``: the next one of that kind), which the run
  crosses while the tests run.

Only the tests marked ``clock`` run (tests/conftest.py marks them by directory; Airflow's are
left out), always on a fresh embedded PostgreSQL: a server named by ``MSADS_WAREHOUSE_URL``
keeps its own clock.
``tests/clock/test_clock_shift.py`` checks inside each run that both clocks really moved.
libfaketime 0.9.10 (Debian 12) needs the settings in ``environment`` and, for Python 3.11's
``time.sleep``, tests/clock/sleep_fix.py.

    python -m tests.clock.shift                  # both runs
    python -m tests.clock.shift --run dst -x     # one run; other arguments go to pytest
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT = Path(__file__).resolve().parents[2]
SLEEP_FIX = Path(__file__).resolve().with_name("sleep_fix.py")
AHEAD_DAYS = 45
DST_ZONE = "America/New_York"
DST_LEAD = 60  # seconds of moved time before the change: the session is set up by then
# Airflow's tests stay out: starting Airflow costs seconds, and the DAGs' tasks read the clock
# as the pipeline tests do.
SELECTION = "clock and not airflow"
LIBRARY_DIRS = ["/usr/lib/*/faketime", "/usr/lib/faketime", "/usr/lib64/faketime",
                "/usr/local/lib/faketime", "/usr/local/lib"]
MISSING = """libfaketime is not installed, so the clock-shifted runs cannot start.
Install it (Debian/Ubuntu: sudo apt-get install faketime), or point MSADS_LIBFAKETIME at
libfaketimeMT.so.1 (or libfaketime.so.1)."""


def find_libfaketime() -> str | None:
    """libfaketimeMT (for multi-threaded programs such as the test session) when there is one."""
    given = os.environ.get("MSADS_LIBFAKETIME", "").strip()
    if given:
        return given if Path(given).is_file() else None
    for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
        for pattern in LIBRARY_DIRS:
            found = sorted(glob.glob(f"{pattern}/{name}"))
            if found:
                return found[0]
    return None


def next_dst_change(zone: ZoneInfo, after: float, direction: str = "next") -> int:
    """The first whole second after ``after`` (epoch) at which the zone's UTC offset changes:
    any change (``next``), or only clocks going ``back`` (a repeated hour) or ``forward``."""

    def offset(t: float):
        return datetime.fromtimestamp(t, zone).utcoffset()

    t, step = int(after), 6 * 3600
    while t < after + 800 * 86400:
        before = offset(t)
        if offset(t + step) != before:
            lo, hi = t, t + step
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
            back = offset(hi) < before
            if direction == "next" or back == (direction == "back"):
                return hi
            t = hi
        else:
            t += step
    raise SystemExit(f"{zone.key} has no daylight-saving change within two years; pick a zone "
                     "that has one")


def zone_known_to_libc(name: str) -> bool:
    tzdir = os.environ.get("TZDIR") or "/usr/share/zoneinfo"
    return (Path(tzdir) / name).is_file()


@dataclass
class Shift:
    name: str
    title: str
    env: dict[str, str]
    days: int | None = None  # a fixed move ...
    start: int | None = None  # ... or the moved epoch the run starts at
    dst_at: int | None = None  # the daylight-saving change the run crosses

    def offset(self, now: float) -> int:
        """Seconds from real time to moved time, for a run starting now."""
        return self.days * 86400 if self.days is not None else round(self.start - now)

    def faketime(self, now: float) -> str:
        return f"+{self.days}d" if self.days is not None else f"{self.offset(now):+d}"


def plans(now: float, direction: str = "next") -> dict[str, Shift]:
    ahead = Shift("ahead", f"the clock {AHEAD_DAYS} days ahead", {}, days=AHEAD_DAYS)
    zone = ZoneInfo(DST_ZONE)
    change = next_dst_change(zone, now + DST_LEAD, direction)
    start = change - DST_LEAD
    local = datetime.fromtimestamp(start, zone)
    dst = Shift("dst", f"{DST_ZONE} from {local:%Y-%m-%d %H:%M:%S %Z}, "
                       f"{DST_LEAD} s before its daylight-saving change",
                {"TZ": DST_ZONE, "MSADS_CLOCK_START": str(start),
                 "MSADS_CLOCK_DST_AT": str(change)}, start=start, dst_at=change)
    return {"ahead": ahead, "dst": dst}


def environment(shift: Shift, library: str, now: float) -> dict[str, str]:
    """The run's environment; every process the tests start inherits it.

    The clock moves by a fixed offset in both runs, so that each process (the embedded
    PostgreSQL included, which runs as another user when the tests run as root) shows the same
    time. libfaketime's start-at form (``@...``) shares its start only through shared memory the
    first process creates for its own user: a server started later would start its clock
    again at the given time and lag behind Python by the seconds in between.
    """
    offset = shift.offset(now)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FAKETIME", "MSADS_CLOCK_")) and k != "MSADS_WAREHOUSE_URL"}
    env.update({
        "LD_PRELOAD": " ".join(filter(None, [library, os.environ.get("LD_PRELOAD")])),
        "FAKETIME": shift.faketime(now),
        # timeouts, sleeps and lock waits measure real time (they use the monotonic clock)
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # ... and so does a wait on a monotonic condition variable, as Python's GIL does every
        # 5 ms. On glibc >= 2.30 libfaketime 0.9.10 "fixes" such waits by default as if the
        # monotonic clock were faked: the deadline lands 45 days in the past, every wait times
        # out at once and threads spin for the GIL (the run took three times as long).
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        # no 10-second cache of the setting: every call follows it (about 0.1 us a call more)
        "FAKETIME_NO_CACHE": "1",
        # file times stay real: faking them serialises every stat() through a semaphore shared
        # by all processes, and makes Python recompile every module it imports
        "NO_FAKE_STAT": "1",
        "PYTHONPATH": str(PROJECT),
        "MSADS_CLOCK_SHIFT": shift.title,
        "MSADS_CLOCK_SHIFT_SECONDS": str(offset),
    })
    env.update(shift.env)
    return env


def install_sleep_fix() -> Path:
    """A .pth file in the venv runs sleep_fix.py in every Python process that has libfaketime,
    also in those the tests start with a PYTHONPATH of their own. Removed after the runs."""
    pth = Path(sysconfig.get_paths()["purelib"]) / "msads_clock_shift.pth"
    fix = repr(str(SLEEP_FIX))
    pth.write_text(f"import os; 'faketime' in os.environ.get('LD_PRELOAD', '') and "
                   f"os.path.isfile({fix}) and __import__('runpy').run_path({fix})\n")
    return pth


def run(shift: Shift, library: str, pytest_args: list[str]) -> tuple[int, float]:
    now = time.time()
    env = environment(shift, library, now)
    shown = " ".join(f"{k}={v}" for k, v in env.items()
                     if k.startswith("FAKETIME") or k in ("TZ", "NO_FAKE_STAT", "LD_PRELOAD"))
    print(f"\n== clock-shifted run: {shift.title}\n   {shown}", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-m", SELECTION, *pytest_args]
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=PROJECT, env=env)
    took = time.monotonic() - started
    print(f"== {shift.name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in "
          f"{took:.0f} s", flush=True)
    if shift.dst_at is not None and shift.start is not None:
        end = shift.start + took
        zone = ZoneInfo(DST_ZONE)
        crossed = datetime.fromtimestamp(shift.dst_at, zone)
        if end > shift.dst_at:
            print(f"   crossed the change to {crossed:%H:%M %Z} {shift.dst_at - shift.start} s "
                  f"into the run; it ended at {datetime.fromtimestamp(end, zone):%H:%M:%S %Z}")
        else:
            print(f"   warning: the run ended before the daylight-saving change "
                  f"({took:.0f} s < {DST_LEAD} s); it did not cross it", flush=True)
    return code, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", choices=["ahead", "dst"],
                        help="only this run (may be repeated); default: both")
    parser.add_argument("--dst", choices=["next", "back", "forward"], default="next",
                        help="which daylight-saving change the dst run crosses: the next one "
                             "(default), or the next where clocks go back or forward")
    args, pytest_args = parser.parse_known_args(argv)
    library = find_libfaketime()
    if library is None:
        print(MISSING, file=sys.stderr)
        return 2
    if not zone_known_to_libc(DST_ZONE):
        print(f"the C library does not know the time zone {DST_ZONE} (no tzdata?); install "
              "it (Debian/Ubuntu: sudo apt-get install tzdata)", file=sys.stderr)
        return 2
    chosen = plans(time.time(), args.dst)
    pth = install_sleep_fix()
    results = []
    try:
        for name in args.run or ["ahead", "dst"]:
            results.append((name, *run(chosen[name], library, pytest_args)))
    finally:
        pth.unlink(missing_ok=True)
    print("\n== clock-shifted runs: " + ", ".join(
        f"{name} {'passed' if code == 0 else 'FAILED'} ({took:.0f} s)"
        for name, code, took in results))
    return max(code for _, code, _ in results)


if __name__ == "__main__":
    sys.exit(main())
