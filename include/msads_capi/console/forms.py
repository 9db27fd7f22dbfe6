"""What the page's forms change, through the same core functions as ``msads space|capi|map``.

Each action validates its fields one by one with the core's own validators, so a bad value gets
the CLI's one-line error next to its field; only then does it change anything, in the caller's
transaction (rolled back on any error, so nothing is half-written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from include.msads_capi import codes, spaces
from include.msads_capi.errors import Conflict, MsadsError, NotFound

if TYPE_CHECKING:
    import psycopg

FORM = "_form"  # an error about the form as a whole, shown at its top


class FormError(MsadsError):
    """Bad input in a form: ``errors`` maps each field to its one-line error."""

    def __init__(self, form: str, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.form = form
        self.errors = errors


def _fields(form: str, checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each field's validator; every field's error at once, or the clean values."""
    values, errors = {}, {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except MsadsError as exc:
            errors[name] = str(exc)
    if errors:
        raise FormError(form, errors)
    return values


def _on_form(form: str, field: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except FormError:
        raise
    except MsadsError as exc:
        raise FormError(form, {field: str(exc)}) from exc


def capi(conn: psycopg.Connection, space_id: str, data: dict[str, str]) -> str:
    state = (data.get("state") or "").strip().lower()
    if state not in ("on", "off"):
        raise FormError("capi", {"state": "choose on or off"})
    space = _on_form("capi", FORM, lambda: spaces.set_capi(conn, space_id, state == "on"))
    kept = ""
    if state == "off":
        kept = f"; {len(spaces.list_mappings(conn, space=space.space_id))} mapping(s) kept"
    return f"Microsoft CAPI is {state} for Space {space.space_id}{kept}"


def space_add(conn: psycopg.Connection, data: dict[str, str]) -> str:
    v = _fields("space_add", {
        "space_id": lambda: spaces.space_id(data.get("space_id", "")),
        "currency": lambda: codes.currency(data.get("currency", "")),
        "region": lambda: codes.region(data.get("region", "")),
    })
    space = _on_form("space_add", "space_id", lambda: spaces.add_space(
        conn, v["space_id"], name=data.get("name") or None, currency=v["currency"],
        region=v["region"]))
    return (f"added Space {space.space_id} ({space.currency_code}, phones default to "
            f"{space.phone_region}); CAPI is off until you turn it on")


def space_set(conn: psycopg.Connection, space_id: str, data: dict[str, str]) -> str:
    v = _fields("space_set", {
        "currency": lambda: codes.currency(data.get("currency", "")),
        "region": lambda: codes.region(data.get("region", "")),
    })
    space = _on_form("space_set", FORM, lambda: spaces.set_space(
        conn, space_id, name=(data.get("name") or "").strip() or None, currency=v["currency"],
        region=v["region"]))
    return (f"updated Space {space.space_id}: name {space.name!r}, currency "
            f"{space.currency_code}, phone region {space.phone_region}")


def mapping_add(conn: psycopg.Connection, data: dict[str, str]) -> str:
    v = _fields("mapping_add", {
        "account": lambda: spaces.get_account(
            conn, spaces.positive_id(data.get("account"), "account id")).account_id,
        "goal": lambda: (data.get("goal") or "").strip() or _missing("pick the goal to send to"),
        "event": lambda: spaces.event_name(data.get("event", "")),
        "rule": lambda: spaces.send_rule(data.get("rule", "")),
    })
    try:
        m = spaces.add_mapping(conn, account_id=v["account"], goal=v["goal"], event=v["event"],
                               rule=v["rule"])
    except Conflict as exc:
        raise FormError("mapping_add", {"event": str(exc)}) from exc
    except NotFound as exc:
        raise FormError("mapping_add", {"goal": str(exc)}) from exc
    except MsadsError as exc:
        raise FormError("mapping_add", {FORM: str(exc)}) from exc
    goal = f"goal {m.goal_id}" + (f" ({m.goal_name})" if m.goal_name else "")
    return (f"mapping {m.mapping_id}: {m.event_name} -> {goal} of account {m.account_id}, send "
            f"rule {m.send_rule}")


def _missing(message: str) -> str:
    raise MsadsError(message)


MAPPING_ACTIONS = ("enable", "disable", "remove", "confirm")


def mapping(conn: psycopg.Connection, mapping_id: str, data: dict[str, str]) -> str:
    action = (data.get("do") or "").strip()
    if action not in MAPPING_ACTIONS:
        raise FormError("mapping", {FORM: f"unknown action {action!r}; use one of "
                                          f"{', '.join(MAPPING_ACTIONS)}"})

    def change() -> str:
        if action == "remove":
            m = spaces.remove_mapping(conn, mapping_id)
            return f"removed mapping {m.mapping_id} ({m.event_name} -> goal {m.goal_id})"
        if action == "confirm":
            m = spaces.confirm_mapping(conn, mapping_id)
            return (f"mapping {m.mapping_id} ({m.event_name}) sends to goal {m.goal_id} "
                    f"({m.goal_name}) again")
        m = spaces.set_mapping_enabled(conn, mapping_id, action == "enable")
        return (f"mapping {m.mapping_id} ({m.event_name} -> goal {m.goal_id}) is "
                f"{'enabled' if m.enabled else 'disabled'}")

    return _on_form(f"mapping-{mapping_id}", FORM, change)
