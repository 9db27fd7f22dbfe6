"""Bulk writes to the ledger and the outbox: COPY into a staging table, then one upsert."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

RESULT_KEY = ("event_id", "account_id", "goal_id")


def upsert(conn, table: str, columns: Sequence[str], rows: Iterable[tuple],
           key: Sequence[str] = RESULT_KEY, *, touch_updated_at: bool = False) -> int:
    """Insert or update ``rows`` (tuples in ``columns`` order) into ``table`` by ``key``."""
    stage, n = _stage(conn, table, columns, rows, "ins")
    if not n:
        return 0
    cols = ", ".join(columns)
    updates = [c for c in columns if c not in key]
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    if touch_updated_at:
        assignments += ", updated_at = now()"
    conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                 f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}")
    return n


def _stage(conn, table: str, columns: Sequence[str], rows: Iterable[tuple],
           kind: str) -> tuple[str, int]:
    """COPY rows into a session temp table shaped like ``table``; (its name, row count)."""
    rows = list(rows)
    if not rows:
        return "", 0
    cols = ", ".join(columns)
    stage = f"_{kind}_{table.replace('.', '_')}_{abs(hash(tuple(columns))) % 10**8}"
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {cols} FROM {table} "
                 "WITH NO DATA")
    conn.execute(f"TRUNCATE {stage}")
    with conn.cursor().copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return stage, len(rows)


def delete_keys(conn, table: str, keys: Iterable[tuple]) -> None:
    """Delete rows by (event_id, account_id, goal_id)."""
    keys = list(keys)
    if not keys:
        return
    events, accounts, goals = zip(*keys, strict=True)
    events, accounts, goals = list(events), [int(a) for a in accounts], [int(g) for g in goals]
    conn.execute(f"DELETE FROM {table} t USING unnest(%s::text[], %s::bigint[], %s::bigint[]) "
                 "AS k(event_id, account_id, goal_id) WHERE t.event_id = k.event_id "
                 "AND t.account_id = k.account_id AND t.goal_id = k.goal_id",
                 (events, accounts, goals))


def update(conn, table: str, columns: Sequence[str], rows: Iterable[tuple],
           key: Sequence[str] = RESULT_KEY, *, touch_updated_at: bool = False) -> int:
    """Update existing rows of ``table`` from ``rows`` (tuples in ``columns`` order) by ``key``."""
    stage, n = _stage(conn, table, columns, rows, "upd")
    if not n:
        return 0
    sets = ", ".join(f"{c} = s.{c}" for c in columns if c not in key)
    if touch_updated_at:
        sets += ", updated_at = now()"
    where = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return conn.execute(f"UPDATE {table} t SET {sets} FROM {stage} s WHERE {where}").rowcount
