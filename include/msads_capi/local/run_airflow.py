"""``make run``: Airflow 3.3 for this project on a laptop, stopped cleanly by Ctrl-C.

Starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor)
with ``AIRFLOW_HOME=.airflow``, the project's ``dags/`` and ``plugins/``, the project root on
``PYTHONPATH`` and parallelism sized for two cores; loads ``airflow_settings.yaml``; serves the UI
on http://localhost:8080 (user ``admin``, password ``admin``, or ``MSADS_AIRFLOW_PASSWORD``).

Ctrl-C (SIGINT) or SIGTERM is passed on to standalone as SIGINT, the one signal it shuts down
cleanly on; anything still alive after the grace period is killed, so no worker is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from include.msads_capi import crypto, settings
from include.msads_capi.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from types import FrameType

GRACE_SECONDS = 45
# Imported once by the LocalExecutor's forkserver, inherited by every worker and task.
PRELOAD = ",".join(("airflow.executors.local_executor", "airflow.sdk.execution_time.supervisor",
                    "airflow.sdk.execution_time.task_runner", "openapi_client", "pandas",
                    "psycopg", "msal"))


def airflow_env(home: Path | None = None, port: int | None = None) -> dict[str, str]:
    """The environment every Airflow process of the project runs with."""
    env = dict(os.environ)
    home = home or settings.load().airflow_home
    python_path = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(":") if p]
    port = str(port or env.get("AIRFLOW__API__PORT", "8080"))
    host = env.get("AIRFLOW__API__HOST", "127.0.0.1")
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks every worker up front: 4 fit two cores (32 by default).
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": port,
        # Task workers reach the api-server here; it must follow the host and port above.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env.get(
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/execution/"),
        # Every task is a process forked from a LocalExecutor worker. The workers start from a
        # forkserver that has imported these once, so a task does not import them again: the
        # REST SDK alone costs about 4 s of CPU per import, which every upload task (and so every
        # new event) waited for. Only Airflow's and third-party modules: the project's own code
        # is still imported by each task, so an edit counts from the next task on.
        "AIRFLOW__SCHEDULER__MP_START_METHOD": env.get(
            "AIRFLOW__SCHEDULER__MP_START_METHOD", "forkserver"),
        "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": env.get(
            "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD", PRELOAD),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "PYTHONPATH": ":".join(dict.fromkeys(python_path)),
        # Airflow and the msads CLI must encrypt with the same key (rotated refresh tokens).
        "AIRFLOW__CORE__FERNET_KEY": crypto.key_material(),
        # standalone starts its components as `airflow ...` from PATH: use this venv's.
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    })
    return env


def _write_password(home: Path) -> None:
    """Choose the admin password before the first start (Airflow keeps a generated one)."""
    home.mkdir(parents=True, exist_ok=True)
    pw_file = home / "simple_auth_manager_passwords.json.generated"
    wanted = settings.load().airflow_password
    current = json.loads(pw_file.read_text()) if pw_file.exists() else {}
    if current.get("admin") != wanted:
        current["admin"] = wanted
        pw_file.write_text(json.dumps(current))


def _airflow(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def prepare(env: dict[str, str]) -> None:
    """Migrate Airflow's metadata database, load ``airflow_settings.yaml`` into it, and
    migrate the warehouse."""
    _write_password(Path(env["AIRFLOW_HOME"]))
    _airflow("db", "migrate", env=env)
    subprocess.run([sys.executable, "-m", "include.msads_capi.local.airflow_settings",
                    str(PROJECT_ROOT / "airflow_settings.yaml")], env=env, check=True)
    # The warehouse the DAGs and the Microsoft CAPI page use (the embedded one on a laptop),
    # migrated so that a fresh clone works at once; nothing happens when it is current.
    subprocess.run([str(Path(sys.executable).with_name("msads")), "db", "migrate"], env=env,
                   check=True, stdout=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print("Airflow did not stop in time; killing what is left", file=sys.stderr)
    # standalone leads its own process group: whatever survived it goes too.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(2)
    return proc.wait()


def main() -> int:
    env = airflow_env()
    prepare(env)
    print(f"Airflow UI: http://localhost:{env['AIRFLOW__API__PORT']} (user admin); "
          "Ctrl-C stops everything", flush=True)
    stop_requested = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # A new session: the terminal's Ctrl-C reaches only us, and we stop Airflow in order.
    proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"],
                            env=env, start_new_session=True)
    while proc.poll() is None and not stop_requested:
        time.sleep(0.5)
    code = _stop(proc)
    print("Airflow stopped", flush=True)
    return 0 if stop_requested else code


if __name__ == "__main__":
    sys.exit(main())
