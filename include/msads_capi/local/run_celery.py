"""``make run-celery``: the project on Airflow's CeleryExecutor, on one machine, as a cluster.

Starts the api-server, scheduler, dag-processor and triggerer, two ``airflow celery worker``
processes with hostnames of their own, and a Redis broker: the machine's own when one answers on
127.0.0.1:6379, otherwise one started from Debian's ``redis-server`` on a free port, with its
data in the local state folder (``.local/redis``). Airflow's metadata database and the Celery
result backend are the database ``airflow`` in the embedded warehouse server. Each of these
is used as configured instead when set: ``AIRFLOW__CELERY__BROKER_URL``,
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, ``AIRFLOW__CELERY__RESULT_BACKEND``.

Everything else is :mod:`include.msads_capi.local.run_airflow`'s: the same environment,
``airflow_settings.yaml``, login, and Ctrl-C, which stops every process it started. Each
component writes ``<AIRFLOW_HOME>/logs/components/<name>.log``. docs/scaling.md says what a
deployment on several machines needs on top.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from include.msads_capi.errors import MsadsError
from include.msads_capi.local.run_airflow import (
    Components,
    airflow,
    airflow_env,
    catch_stop_signals,
    prepare,
    run_until_stopped,
)
from include.msads_capi.paths import display, local_dir
from include.msads_capi.warehouse import EmbeddedWarehouse

WORKERS = ("worker-1", "worker-2")
METADATA_DB = "airflow"
MACHINE_REDIS = ("127.0.0.1", 6379)
# Celery hands a task that a worker took but did not acknowledge to another worker after this
# long. Airflow acknowledges when the task ends, so it must exceed the longest task: the upload
# DAG's runs time out after 15 minutes and the alerts DAG's after 5; the other DAGs' tasks take
# minutes. A worker that dies is noticed sooner by the scheduler (the task instance's
# heartbeat), which retries the task; this only bounds a redelivery nobody needs.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(components: Components, data_dir: Path, timeout: float = 30) -> str:
    """Start ``redis-server`` (Debian's package) as the component ``redis`` on a free port on
    127.0.0.1, its data in ``data_dir``; the broker URL once it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MsadsError("no Redis answers on 127.0.0.1:6379 and there is no redis-server to "
                         "start: install it (sudo apt-get install redis-server), or set "
                         "AIRFLOW__CELERY__BROKER_URL to a Redis you run")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    components.start("redis", [binary, "--bind", "127.0.0.1", "--port", str(port),
                               "--dir", str(data_dir), "--daemonize", "no"],
                     dict(os.environ), stop_signal=signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not redis_answers("127.0.0.1", port):
        if components.procs["redis"].poll() is not None or time.monotonic() > deadline:
            raise MsadsError(f"redis-server did not start on 127.0.0.1:{port}; see "
                             f"{components.log('redis') or 'its output above'}")
        time.sleep(0.2)
    return f"redis://127.0.0.1:{port}/0"


def broker_url(components: Components, env: dict[str, str], state_dir: Path) -> str:
    """The configured broker, else the machine's Redis, else a ``redis-server`` of our own."""
    if env.get("AIRFLOW__CELERY__BROKER_URL"):
        return env["AIRFLOW__CELERY__BROKER_URL"]
    if redis_answers(*MACHINE_REDIS):
        return "redis://{}:{}/0".format(*MACHINE_REDIS)
    return start_redis(components, state_dir / "redis")


def metadata_database(env: dict[str, str]) -> str:
    """Airflow's metadata database: the configured one, else the database ``airflow`` of the
    embedded warehouse server (started when it is not running)."""
    if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        return env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # SQLAlchemy's postgresql:// is psycopg2 (installed with the postgres provider); the
    # server is reached by its socket folder, given as the host query parameter.
    return EmbeddedWarehouse().start(METADATA_DB)


def _jwt_secret(home: Path) -> str:
    """One secret for every component to sign and check task tokens with, kept in
    ``AIRFLOW_HOME`` (mode 600) so that a restarted component still trusts running tasks."""
    path = home / "jwt_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def celery_env(env: dict[str, str], *, broker: str, database: str) -> dict[str, str]:
    """:func:`airflow_env`'s environment for the CeleryExecutor: what every component shares."""
    env = dict(env)
    # The LocalExecutor's forkserver settings mean nothing here (see celery_config.py).
    for key in ("AIRFLOW__SCHEDULER__MP_START_METHOD",
                "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"):
        env.pop(key, None)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": env.get("AIRFLOW__CELERY__RESULT_BACKEND")
        or "db+" + database,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": env.get(
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
            str(VISIBILITY_TIMEOUT_SECONDS)),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS":
            "include.msads_capi.local.celery_config.CELERY_CONFIG",
        # Task slots per worker: two workers of 2 on a 2-core machine.
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY",
                                                       "2"),
        # Every component signs or checks the tokens tasks use with the Execution API.
        "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET")
        or _jwt_secret(Path(env["AIRFLOW_HOME"])),
        "AIRFLOW__API__WORKERS": env.get("AIRFLOW__API__WORKERS", "1"),
    })
    return env


def worker_env(env: dict[str, str], name: str) -> dict[str, str]:
    """A worker's environment: its task instances record ``name`` as their hostname."""
    return {**env, "AIRFLOW__CORE__HOSTNAME_CALLABLE":
            "include.msads_capi.local.celery_config.worker_hostname",
            "AIRFLOW__MSADS__WORKER_HOSTNAME": name}


def start_services(components: Components, env: dict[str, str]) -> None:
    """The api-server, scheduler, dag-processor and triggerer, each a component."""
    for name in SERVICES:
        components.start(name, airflow(name), env)


def start_worker(components: Components, env: dict[str, str], name: str,
                 concurrency: int | None = None, queues: str | None = None) -> None:
    """One ``airflow celery worker`` named ``name`` (``name@<machine>`` for Celery)."""
    home = Path(env["AIRFLOW_HOME"])
    command = airflow("celery", "worker", "--celery-hostname", f"{name}@%h",
                      "--pid", str(home / f"airflow-{name}.pid"),
                      # On one machine the api-server reads every task's log file itself.
                      "--skip-serve-logs")
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if queues:
        command += ["--queues", queues]
    components.start(name, command, worker_env(env, name))


def start_cluster(components: Components, env: dict[str, str],
                  workers: Sequence[str] = WORKERS, concurrency: int | None = None) -> None:
    """Prepare the metadata database, then start the services and the workers."""
    prepare(env)
    start_services(components, env)
    for name in workers:
        start_worker(components, env, name, concurrency)


def main() -> int:
    stop_requested = catch_stop_signals()
    base = airflow_env()
    home = Path(base["AIRFLOW_HOME"])
    components = Components(home / "logs" / "components")
    try:
        broker = broker_url(components, base, local_dir())
        env = celery_env(base, broker=broker, database=metadata_database(base))
        where = urlsplit(broker)  # host and port only: a broker URL can hold a password
        print(f"Celery broker: Redis on {where.hostname}:{where.port}"
              f"{' (started here)' if 'redis' in components.procs else ''}; metadata database "
              "and result backend: " + ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
                                        if base.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") else
                                        f"database {METADATA_DB} of the embedded PostgreSQL"),
              flush=True)
        start_cluster(components, env)
    except (MsadsError, subprocess.CalledProcessError) as exc:
        components.stop_all()
        print(f"make run-celery: {exc}", file=sys.stderr)
        return 1
    print(f"Airflow UI: http://localhost:{env['AIRFLOW__API__PORT']} (user admin); "
          f"{len(WORKERS)} Celery workers; logs in {display(components.log_dir)}; "
          "Ctrl-C stops everything", flush=True)
    stopped = run_until_stopped(components, stop_requested, stop_when_any_exits=False)
    print("Airflow stopped", flush=True)
    return 0 if stopped else 1


if __name__ == "__main__":
    sys.exit(main())
