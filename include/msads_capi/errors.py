"""The three kinds of error, and what each one means for a person, the CLI and an Airflow task.

- :class:`MsadsError`: a person can fix it (bad input, configuration, an account that needs
  signing in again, a request Microsoft refuses). Its message is one line that says how.
  Retrying cannot help: the CLI prints it and exits 2; a task fails at once.
- :class:`Unavailable`: something msads-capi depends on cannot be reached or is busy for now
  (the warehouse, Microsoft Advertising). Retrying later can help: the CLI prints it and exits
  75 (try again); a task fails and Airflow retries it.
- :data:`BUGS`: msads-capi's own code is wrong. Nothing retries it or dresses it up as
  something else: a task fails at once with the traceback in its log.

``include/msads_capi/tasks/common.py`` (:func:`task_errors`) maps them to Airflow in one
place; ``include/msads_capi/cli/__init__.py`` to exit statuses.
"""

from __future__ import annotations


class MsadsError(Exception):
    """A problem a person can fix; its message is one line that says how."""


class NotFound(MsadsError):
    """The thing named does not exist (a Space, an account, a mapping...)."""


class Conflict(MsadsError):
    """The change would contradict what is already configured."""


class Unavailable(Exception):
    """Something msads-capi needs is unavailable for now; the same work may succeed later."""


# Exceptions that mean our own code is wrong; retrying cannot help.
BUGS = (AttributeError, TypeError, NameError, KeyError, IndexError, AssertionError)
