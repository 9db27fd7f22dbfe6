"""Every benchmark script still runs: each at a tiny size, ending in its ratio line.

Timings are not checked here (that is what the scripts are for); a renamed function, a changed
signature or a broken wire makes a script fail, and so this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "emulator.py": (["--runs", "1"], r"SDK call / emulator alone: \d+\.\d\d"),
    "identity.py": (["--rows", "2000"], r"speedup: \d+\.\d\d"),
    "pipeline.py": (["--sizes", "300,600", "--ceiling-calls", "1"],
                    r"fraction of SDK ceiling: \d+\.\d\d"),
    "latency.py": (["--minutes", "0.05", "--rate", "2"], r"p95 over the 30 s goal: \d+\.\d\d"),
    "celery.py": (["--events", "200"], r"2 workers / 1 worker: \d+\.\d\d"),
}

# figures a script prints besides its last line, which the issue that set its goals asks for
ALSO = {"pipeline.py": (r"plan \+ hash: \d+\.\d µs/event",
                        r"raw load of ready-made bodies \(mean\): [\d,]+ conversions/s = "
                        r"\d+\.\d\d x the SDK ceiling",
                        r"CPU budget: 0\.7 of the ceiling on \d+ cores leaves \d+\.\d µs of CPU "
                        r"per event",
                        r"SDK ceiling on the emulator still holding the [\d,]+ backlog's "
                        r"conversions: [\d,]+ conversions/s; emulator alone [\d,]+ = \d+\.\d\d x",
                        r"fraction of the ceiling on the emulator holding the backlog: \d+\.\d\d")}


def test_every_bench_script_has_a_tiny_run():
    assert {p.name for p in (ROOT / "bench").glob("*.py")} == set(TINY)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_runs_at_a_tiny_size(script, tmp_path):
    args, last_line = TINY[script]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MSADS_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines and re.fullmatch(last_line, lines[-1]), proc.stdout[-2000:]
    for figure in ALSO.get(script, ()):
        assert re.search(figure, proc.stdout), (figure, proc.stdout[-2000:])
