"""Spaces, the CAPI switch, linked ad accounts and goal mappings: the Events Manager as code.

Every function takes an open connection inside a transaction and either changes everything it
was asked to or raises :class:`MsadsError` with the fix, leaving nothing half-written.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi import codes
from include.msads_capi.errors import Conflict, MsadsError, NotFound

if TYPE_CHECKING:
    import psycopg

SEND_RULES = ("all", "attributed_only")
_SPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Space:
    space_id: str
    name: str
    currency_code: str
    phone_region: str
    capi_enabled: bool
    capi_changed_at: datetime | None


@dataclass(frozen=True)
class Account:
    account_id: int
    customer_id: int
    space_id: str
    conn_id: str
    name: str | None
    status: str
    status_reason: str | None
    goals_fetched_at: datetime | None

    def task_entry(self) -> dict:
        """The account as a mapped Airflow task gets it: id, connection and the label the UI
        names the task by (id, name and Space)."""
        label = f"{self.account_id} {self.name or ''} ({self.space_id})".replace("  ", " ")
        return {"account_id": self.account_id, "conn_id": self.conn_id, "label": label}


@dataclass(frozen=True)
class Mapping:
    mapping_id: int
    account_id: int
    space_id: str
    goal_id: int
    goal_name: str | None
    event_name: str
    send_rule: str
    enabled: bool
    goal_state: str  # verified | unverified | missing | renamed
    broken_reason: str | None


def as_dict(item: Space | Account | Mapping) -> dict:
    """A dataclass as a JSON-friendly dict (datetimes as ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(item).items()}


# --------------------------------------------------------------------------- validation


def space_id(value: str) -> str:
    value = (value or "").strip()
    if not _SPACE_ID.match(value):
        raise MsadsError(f"Space id {value!r} is not valid; use up to 64 letters, digits, "
                         "'_', '-' or '.', starting with a letter or digit")
    return value


def positive_id(value: int | str | None, what: str) -> int:
    text = str(value).strip().replace("-", "") if value is not None else ""
    if not text.isdigit() or int(text) <= 0 or int(text) >= 2**63:
        raise MsadsError(f"{what} {value!r} is not valid; use the number Microsoft Advertising "
                         "shows (digits only)")
    return int(text)


def send_rule(value: str) -> str:
    rule = (value or "").strip().lower().replace("-", "_")
    if rule not in SEND_RULES:
        raise MsadsError(f"send rule {value!r} is not valid; use 'all' (send every event) or "
                         "'attributed_only' (only events attributed to Microsoft)")
    return rule


def event_name(value: str) -> str:
    name = (value or "").strip()
    if not name or len(name) > 200:
        raise MsadsError("event name must be 1 to 200 characters, e.g. Purchase or Lead")
    return name


# --------------------------------------------------------------------------- spaces


def get_space(conn: psycopg.Connection, sid: str) -> Space:
    row = conn.execute(
        "SELECT space_id, name, currency_code, phone_region, capi_enabled, capi_changed_at "
        "FROM msads.spaces WHERE space_id = %s", (sid,)).fetchone()
    if row is None:
        raise NotFound(f"Space {sid!r} does not exist; create it with: msads space add {sid} "
                       "--currency USD --region US")
    return Space(*row)


def add_space(conn: psycopg.Connection, sid: str, *, name: str | None, currency: str,
              region: str) -> Space:
    sid = space_id(sid)
    cur, reg = codes.currency(currency), codes.region(region)
    row = conn.execute(
        "INSERT INTO msads.spaces (space_id, name, currency_code, phone_region) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (space_id) DO NOTHING RETURNING space_id",
        (sid, (name or sid).strip(), cur, reg)).fetchone()
    if row is None:
        raise Conflict(f"Space {sid!r} already exists; change it with: msads space set {sid} ...")
    return get_space(conn, sid)


def list_spaces(conn: psycopg.Connection) -> list[Space]:
    rows = conn.execute(
        "SELECT space_id, name, currency_code, phone_region, capi_enabled, capi_changed_at "
        "FROM msads.spaces ORDER BY space_id").fetchall()
    return [Space(*r) for r in rows]


def set_space(conn: psycopg.Connection, sid: str, *, name: str | None = None,
              currency: str | None = None, region: str | None = None) -> Space:
    space = get_space(conn, space_id(sid))
    if name is None and currency is None and region is None:
        raise MsadsError("nothing to change; give --name, --currency or --region")
    conn.execute(
        "UPDATE msads.spaces SET name = %s, currency_code = %s, phone_region = %s, "
        "updated_at = now() WHERE space_id = %s",
        (name.strip() if name else space.name,
         codes.currency(currency) if currency is not None else space.currency_code,
         codes.region(region) if region is not None else space.phone_region, space.space_id))
    return get_space(conn, space.space_id)


def set_capi(conn: psycopg.Connection, sid: str, enabled: bool) -> Space:
    """Turn Microsoft CAPI on or off for a Space; mappings are kept either way."""
    space = get_space(conn, space_id(sid))
    if space.capi_enabled != enabled:
        conn.execute("UPDATE msads.spaces SET capi_enabled = %s, capi_changed_at = now(), "
                     "updated_at = now() WHERE space_id = %s", (enabled, space.space_id))
    return get_space(conn, space.space_id)


# --------------------------------------------------------------------------- accounts

_ACCOUNT_COLS = ("account_id, customer_id, space_id, conn_id, name, status, status_reason, "
                 "goals_fetched_at")


def get_account(conn: psycopg.Connection, account_id: int) -> Account:
    row = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM msads.accounts WHERE account_id = %s",
                       (account_id,)).fetchone()
    if row is None:
        raise NotFound(f"account {account_id} is not linked; link it with: msads account link "
                       f"{account_id} --customer CUSTOMER_ID --space SPACE")
    return Account(*row)


def link_account(conn: psycopg.Connection, account_id: int | str, *, customer_id: int | str,
                 space: str, conn_id: str = "msads_default",
                 name: str | None = None) -> tuple[Account, bool]:
    """Link an ad account to a Space; returns (account, created). Linking again is a no-op."""
    aid = positive_id(account_id, "account id")
    cid = positive_id(customer_id, "customer id")
    sid = get_space(conn, space_id(space)).space_id
    conn_id = (conn_id or "").strip()
    if not re.match(r"^[A-Za-z0-9_.-]{1,250}$", conn_id):
        raise MsadsError(f"connection id {conn_id!r} is not valid; use the Airflow connection id "
                         "of the Microsoft profile, e.g. msads_default")
    existing = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM msads.accounts WHERE account_id = %s "
                            "FOR UPDATE", (aid,)).fetchone()
    if existing is None:
        conn.execute(
            "INSERT INTO msads.accounts (account_id, customer_id, space_id, conn_id, name) "
            "VALUES (%s, %s, %s, %s, %s)", (aid, cid, sid, conn_id, name))
        return get_account(conn, aid), True
    current = Account(*existing)
    if current.space_id != sid:
        raise Conflict(f"account {aid} is linked to Space {current.space_id!r}; an account "
                       f"belongs to one Space: unlink it first with: msads account unlink {aid}")
    conn.execute("UPDATE msads.accounts SET customer_id = %s, conn_id = %s, "
                 "name = COALESCE(%s, name), updated_at = now() WHERE account_id = %s",
                 (cid, conn_id, name, aid))
    return get_account(conn, aid), False


def unlink_account(conn: psycopg.Connection, account_id: int | str, *, force: bool = False) -> int:
    """Unlink an account; returns how many mappings went with it (only with ``force``)."""
    account = get_account(conn, positive_id(account_id, "account id"))
    (n,) = conn.execute("SELECT count(*) FROM msads.mappings WHERE account_id = %s",
                        (account.account_id,)).fetchone()
    if n and not force:
        raise Conflict(f"account {account.account_id} has {n} mapping(s); remove them with "
                       f"msads map remove, or unlink with --force to remove them too")
    conn.execute("DELETE FROM msads.mappings WHERE account_id = %s", (account.account_id,))
    conn.execute("DELETE FROM msads.accounts WHERE account_id = %s", (account.account_id,))
    return n


def list_accounts(conn: psycopg.Connection, space: str | None = None) -> list[Account]:
    if space is not None:
        get_space(conn, space_id(space))
    rows = conn.execute(
        f"SELECT {_ACCOUNT_COLS} FROM msads.accounts "
        "WHERE %(space)s::text IS NULL OR space_id = %(space)s ORDER BY space_id, account_id",
        {"space": space}).fetchall()
    return [Account(*r) for r in rows]


# --------------------------------------------------------------------------- mappings

_MAPPING_SELECT = """
SELECT m.mapping_id, m.account_id, a.space_id, m.goal_id, COALESCE(g.name, m.goal_name),
       m.event_name, m.send_rule, m.enabled,
       CASE WHEN g.goal_id IS NOT NULL AND g.missing_since IS NULL
                 AND m.broken_reason IS NULL THEN 'verified'
            WHEN a.goals_fetched_at IS NULL THEN 'unverified'
            WHEN g.goal_id IS NULL OR g.missing_since IS NOT NULL THEN 'missing'
            ELSE 'renamed' END,
       m.broken_reason
FROM msads.mappings m
JOIN msads.accounts a USING (account_id)
LEFT JOIN msads.goals g ON g.account_id = m.account_id AND g.goal_id = m.goal_id
"""


def _resolve_goal(conn: psycopg.Connection, account: Account, goal: str) -> tuple[int, str | None]:
    """A goal given by id or by name, checked against the account's fetched goals when known."""
    text = (goal or "").strip()
    if not text:
        raise MsadsError("give the goal as its id or its name (--goal)")
    fetched = account.goals_fetched_at is not None
    if text.isdigit():
        gid = positive_id(text, "goal id")
        if not fetched:
            return gid, None  # shown as unverified until goals are fetched
        row = conn.execute("SELECT name FROM msads.goals WHERE account_id = %s AND goal_id = %s "
                           "AND missing_since IS NULL", (account.account_id, gid)).fetchone()
        if row is None:
            raise NotFound(f"goal {gid} is not an offline conversion goal of account "
                           f"{account.account_id}; see: msads goal list --account "
                           f"{account.account_id}")
        return gid, row[0]
    if not fetched:
        raise MsadsError(f"goals of account {account.account_id} have not been fetched yet, so "
                         f"{text!r} cannot be looked up; give the goal id, or refresh goals first")
    rows = conn.execute("SELECT goal_id, name FROM msads.goals WHERE account_id = %s "
                        "AND missing_since IS NULL AND lower(name) = lower(%s) ORDER BY goal_id",
                        (account.account_id, text)).fetchall()
    exact = [r for r in rows if r[1] == text]
    if len(exact) == 1 or len(rows) == 1:
        return (exact or rows)[0]
    if not rows:
        raise NotFound(f"account {account.account_id} has no offline conversion goal named "
                       f"{text!r}; see: msads goal list --account {account.account_id}")
    raise MsadsError(f"several goals of account {account.account_id} are named like {text!r}; "
                     "give the goal id instead")


def get_mapping(conn: psycopg.Connection, mapping_id: int | str) -> Mapping:
    mid = positive_id(mapping_id, "mapping id")
    row = conn.execute(_MAPPING_SELECT + " WHERE m.mapping_id = %s", (mid,)).fetchone()
    if row is None:
        raise NotFound(f"mapping {mid} does not exist; see: msads map list")
    return Mapping(*row)


def add_mapping(conn: psycopg.Connection, *, account_id: int | str, goal: str, event: str,
                rule: str = "all") -> Mapping:
    account = get_account(conn, positive_id(account_id, "account id"))
    gid, gname = _resolve_goal(conn, account, goal)
    ev, sr = event_name(event), send_rule(rule)
    row = conn.execute(
        "INSERT INTO msads.mappings (account_id, goal_id, goal_name, event_name, send_rule) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id, goal_id, event_name) DO NOTHING "
        "RETURNING mapping_id", (account.account_id, gid, gname, ev, sr)).fetchone()
    if row is None:
        (mid,) = conn.execute("SELECT mapping_id FROM msads.mappings WHERE account_id = %s AND "
                              "goal_id = %s AND event_name = %s",
                              (account.account_id, gid, ev)).fetchone()
        raise Conflict(f"event {ev!r} is already mapped to goal {gid} of account "
                       f"{account.account_id} (mapping {mid}); change it with msads map "
                       "enable/disable or remove it first")
    return get_mapping(conn, row[0])


def list_mappings(conn: psycopg.Connection, *, account_id: int | str | None = None,
                  space: str | None = None) -> list[Mapping]:
    aid = positive_id(account_id, "account id") if account_id is not None else None
    if space is not None:
        get_space(conn, space_id(space))
    rows = conn.execute(
        _MAPPING_SELECT + " WHERE (%(aid)s::bigint IS NULL OR m.account_id = %(aid)s) "
        "AND (%(space)s::text IS NULL OR a.space_id = %(space)s) "
        "ORDER BY a.space_id, m.account_id, m.event_name, m.goal_id",
        {"aid": aid, "space": space}).fetchall()
    return [Mapping(*r) for r in rows]


def remove_mapping(conn: psycopg.Connection, mapping_id: int | str) -> Mapping:
    mapping = get_mapping(conn, mapping_id)
    conn.execute("DELETE FROM msads.mappings WHERE mapping_id = %s", (mapping.mapping_id,))
    return mapping


def set_mapping_enabled(conn: psycopg.Connection, mapping_id: int | str, enabled: bool) -> Mapping:
    mapping = get_mapping(conn, mapping_id)
    conn.execute("UPDATE msads.mappings SET enabled = %s, updated_at = now() "
                 "WHERE mapping_id = %s", (enabled, mapping.mapping_id))
    return get_mapping(conn, mapping.mapping_id)


def confirm_mapping(conn: psycopg.Connection, mapping_id: int | str) -> Mapping:
    """Keep sending to a goal renamed in Microsoft Advertising: record its current name and
    clear the hold. A goal that no longer exists cannot be confirmed."""
    mapping = get_mapping(conn, mapping_id)
    row = conn.execute(
        "UPDATE msads.mappings m SET goal_name = g.name, broken_reason = NULL, updated_at = now() "
        "FROM msads.goals g WHERE m.mapping_id = %s AND g.account_id = m.account_id "
        "AND g.goal_id = m.goal_id AND g.missing_since IS NULL RETURNING g.name",
        (mapping.mapping_id,)).fetchone()
    if row is None:
        raise MsadsError(f"goal {mapping.goal_id} of mapping {mapping.mapping_id} no longer exists "
                         "in Microsoft Advertising; map the event to another goal")
    return get_mapping(conn, mapping.mapping_id)
