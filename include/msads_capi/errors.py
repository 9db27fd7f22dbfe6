"""Errors a person can act on: each says what is wrong and what to do."""

from __future__ import annotations


class MsadsError(Exception):
    """A problem the user can fix; its message is one line that says how.

    The CLI prints it as ``msads: error: <message>`` and exits with status 2; DAG tasks turn it
    into a task failure that does not retry.
    """


class NotFound(MsadsError):
    """The thing named does not exist (a Space, an account, a mapping...)."""


class Conflict(MsadsError):
    """The change would contradict what is already configured."""
