"""Versioned SQL migrations from ``include/sql/migrations``, applied under an advisory lock.

All pending migrations apply in one transaction that first takes a transaction-level advisory
lock, so two processes migrating at once queue up and the second finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include.msads_capi import outcomes, settings
from include.msads_capi.errors import MsadsError
from include.msads_capi.paths import SQL_DIR
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_DIR = SQL_DIR / "migrations"
# Any fixed 64-bit number works; this one spells "msadscap" in ASCII.
ADVISORY_LOCK_KEY = int.from_bytes(b"msadscap", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS msads;
CREATE TABLE IF NOT EXISTS msads.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def template(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()[:16]

    def render(self) -> str:
        loaded = settings.load()
        return (self.template.replace("{{events_table}}", loaded.events_table)
                .replace("{{adjustments_table}}", loaded.adjustments_table))


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None

    @property
    def label(self) -> str:
        return f"{self.migration.version:04d}_{self.migration.name}"


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations on disk, in version order; a misnamed file is an error, not skipped."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MsadsError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MsadsError("two migration files share a version number; renumber one of them")
    return found


def _lock_and_bootstrap(conn: psycopg.Connection) -> dict[int, tuple[str, datetime]]:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
    conn.execute(_BOOTSTRAP)
    rows = conn.execute("SELECT version, checksum, applied_at FROM msads.schema_migrations")
    return {version: (checksum, applied_at) for version, checksum, applied_at in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[int, tuple[str, datetime]]) -> None:
    for m in migrations:
        if m.version in applied and applied[m.version][0] != m.checksum:
            raise MsadsError(
                f"migration {m.path.name} changed after it was applied; "
                "restore it and put the change in a new migration"
            )


def status(warehouse: Warehouse) -> list[MigrationState]:
    """Every migration on disk with the time it was applied (None when pending). Writes nothing."""
    migrations = discover()
    with transaction(warehouse) as conn:
        applied = {}
        if conn.execute("SELECT to_regclass('msads.schema_migrations')").fetchone()[0]:
            rows = conn.execute("SELECT version, checksum, applied_at FROM msads.schema_migrations")
            applied = {version: (checksum, at) for version, checksum, at in rows}
    _check_unchanged(migrations, applied)
    return [MigrationState(m, applied.get(m.version, (None, None))[1]) for m in migrations]


def migrate(warehouse: Warehouse) -> list[Migration]:
    """Apply the pending migrations in one transaction; returns those applied (maybe none)."""
    migrations = discover()
    with transaction(warehouse) as conn:
        applied = _lock_and_bootstrap(conn)
        _check_unchanged(migrations, applied)
        done = []
        for m in migrations:
            if m.version in applied:
                continue
            try:
                conn.execute(m.render())
            except Exception as exc:
                raise MsadsError(f"migration {m.path.name} failed: {exc}".strip()) from exc
            conn.execute(
                "INSERT INTO msads.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
            done.append(m)
        outcomes.sync(conn)  # the explanations follow the code, new migration or not
    return done


def pending(warehouse: Warehouse) -> list[Migration]:
    return [s.migration for s in status(warehouse) if s.applied_at is None]


def require_current(warehouse: Warehouse) -> None:
    """Fail with the fix when the warehouse is behind the code."""
    left = pending(warehouse)
    if left:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in left)
        raise MsadsError(f"the warehouse needs migrations ({names}); run: msads db migrate")
