"""The one error type for mistakes the caller can fix, shared by every layer.

`app.py` prints a UserError's message without a traceback and exits with 2; anything else
is a bug or an outage (exit 1, traceback with -v). Lower-level errors that a user causes
(an unknown encoder, a collection that does not exist, a store held by another process)
subclass it, keeping the builtin base their callers already catch.
"""

from typing import Optional


class UserError(Exception):
    """A mistake the user can fix; the message says what to do."""


def first_line(exc: BaseException, limit: Optional[int] = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), for a message
    of our own; its type's name when the message is empty (``str(exc)`` of a bare error)."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line[:limit] if limit else line
