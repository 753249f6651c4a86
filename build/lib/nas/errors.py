"""The one base class for errors a user can cause and fix.

Every such error (a bad flag, a missing or corrupt file, a run folder that is not a run) derives
from `UserError`; the command line catches only it, prints its message in one line and exits 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and what to do."""


class UsageError(UserError):
    """A flag or argument the command cannot use."""
