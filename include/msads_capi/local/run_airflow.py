"""``make run``: Airflow 3.3 for this project on a laptop, stopped cleanly by Ctrl-C.

Starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor)
with ``AIRFLOW_HOME=.airflow``, the project's ``dags/`` and ``plugins/``, the project root on
``PYTHONPATH`` and parallelism sized for two cores; loads ``airflow_settings.yaml``; serves the UI
on http://localhost:8080 (user ``admin``, password ``admin``, or ``MSADS_AIRFLOW_PASSWORD``).

Ctrl-C (SIGINT) or SIGTERM is passed on to standalone as SIGINT, the one signal it shuts down
cleanly on; anything still alive after the grace period is killed, so no worker is left behind.

This module owns what every local launcher shares (``make run-celery`` too:
:mod:`include.msads_capi.local.run_celery`): the environment of the project's Airflow processes
(:func:`airflow_env`), preparing the metadata database (:func:`prepare`), and starting and
stopping processes in groups of their own (:class:`Components`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from include.msads_capi import crypto, settings
from include.msads_capi.paths import PROJECT_ROOT
from include.msads_capi.pipeline import WARM_MODULES

if TYPE_CHECKING:
    from types import FrameType

GRACE_SECONDS = 45
# Imported once by the process that forks the task processes, so that no task imports them
# again: the LocalExecutor's forkserver here, a Celery worker before it forks its pool.
PRELOAD_MODULES = ("airflow.sdk.execution_time.supervisor",
                   "airflow.sdk.execution_time.task_runner", *WARM_MODULES)
PRELOAD = ",".join(("airflow.executors.local_executor", *PRELOAD_MODULES))


def airflow(*args: str) -> list[str]:
    """The command line of ``airflow ARGS...`` from this venv."""
    return [str(Path(sys.executable).with_name("airflow")), *args]


def airflow_env(home: Path | None = None, port: int | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every Airflow process of the project runs with (on top of ``base``,
    the process environment by default)."""
    env = dict(os.environ if base is None else base)
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
    subprocess.run(airflow(*args), env=env, check=True, stdout=subprocess.DEVNULL)


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


def _stop(proc: subprocess.Popen, first: signal.Signals = signal.SIGINT,
          grace: float = GRACE_SECONDS, name: str = "Airflow") -> int:
    """Stop a process that leads its own process group: ``first`` to the leader, then, after
    ``grace`` seconds, SIGTERM and SIGKILL to whatever is left of the group."""
    if proc.poll() is None:
        try:
            proc.send_signal(first)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing what is left", file=sys.stderr)
    # The leader of its own process group: whatever survived it goes too.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(2)
    return proc.wait()


class Components:
    """Processes started each in a session (and so a process group) of its own, by name, and
    stopped together in the reverse order. A terminal's Ctrl-C then reaches only the launcher,
    which stops them in order; and one component can be stopped, killed or restarted alone.

    :param log_dir: where each component writes ``<name>.log``; None: to this terminal.
    """

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str], signal.Signals]] = {}
        self._logs: dict[str, IO] = {}

    def start(self, name: str, command: list[str], env: dict[str, str],
              stop_signal: signal.Signals = signal.SIGINT) -> subprocess.Popen:
        """Start ``command`` as component ``name`` (``stop_signal`` asks it to shut down)."""
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._logs[name] = out = (self.log_dir / f"{name}.log").open("a")
        self._commands[name] = (command, env, stop_signal)
        self.procs[name] = subprocess.Popen(command, env=env, stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self.procs[name]

    def log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir is not None else None

    def stop(self, name: str, grace: float = GRACE_SECONDS) -> int:
        """Stop one component (and its process group); its exit code."""
        proc = self.procs[name]
        code = _stop(proc, self._commands[name][2], grace, name)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()
        return code

    def restart(self, name: str) -> subprocess.Popen:
        """Stop one component and start it again with the same command and environment."""
        self.stop(name)
        return self.start(name, *self._commands[name])

    def kill(self, name: str) -> None:
        """SIGKILL to the component's process group and to every process under it, as when its
        machine dies. (Airflow runs each task in a process group of its own, which a signal to
        the component's group would miss: the task would live on without its supervisor.)"""
        import psutil

        pid = self.procs[name].pid
        try:
            os.killpg(pid, signal.SIGSTOP)  # nothing forks while the tree is listed
            tree = psutil.Process(pid).children(recursive=True)
        except (ProcessLookupError, psutil.NoSuchProcess):
            tree = []
        for group in dict.fromkeys([pid, *(p.pid for p in tree)]):
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in tree:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.procs[name].wait()

    def exited(self) -> dict[str, int]:
        """The components that are no longer running, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop_all(self) -> None:
        """Stop every component, the last started first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def catch_stop_signals() -> list[int]:
    """From now on Ctrl-C and SIGTERM only ask to stop: they are appended to the list returned,
    which :func:`run_until_stopped` watches. Call it before starting anything."""
    stop_requested: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop_requested


def run_until_stopped(components: Components, stop_requested: list[int], *,
                      stop_when_any_exits: bool) -> bool:
    """Wait for a stop signal (:func:`catch_stop_signals`), then stop every component; True
    when a signal stopped them (False: a component ended by itself)."""
    reported: set[str] = set()
    try:
        while not stop_requested:
            ended = components.exited()
            if ended and (stop_when_any_exits or len(ended) == len(components.procs)):
                break
            for name in sorted(set(ended) - reported):
                print(f"{name} exited with code {ended[name]}; the others keep running "
                      "(Ctrl-C stops everything)", file=sys.stderr, flush=True)
                reported.add(name)
            time.sleep(0.5)
    finally:
        components.stop_all()
    return bool(stop_requested)


def main() -> int:
    env = airflow_env()
    prepare(env)
    print(f"Airflow UI: http://localhost:{env['AIRFLOW__API__PORT']} (user admin); "
          "Ctrl-C stops everything", flush=True)
    stop_requested = catch_stop_signals()
    components = Components()
    proc = components.start("standalone", airflow("standalone"), env)
    stopped = run_until_stopped(components, stop_requested, stop_when_any_exits=True)
    print("Airflow stopped", flush=True)
    return 0 if stopped else proc.returncode


if __name__ == "__main__":
    sys.exit(main())
