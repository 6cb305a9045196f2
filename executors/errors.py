"""The one error type for mistakes the caller can fix, shared by every layer.

`app.py` prints a UserError's message without a traceback and exits with 2; anything else
is a bug or an outage (exit 1, traceback with -v). Lower-level errors that a user causes
(an unknown encoder, a collection that does not exist, a store held by another process)
subclass it, keeping the builtin base their callers already catch.
"""


class UserError(Exception):
    """A mistake the user can fix; the message says what to do."""
