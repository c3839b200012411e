"""What every ``geofence`` command shares: its name, exit statuses and error types."""

from __future__ import annotations

PROG = "geofence"
EXIT_STORE = 1  # the account store could not be read or written (unreachable, timed out)
EXIT_USAGE = 2  # a bad argument or configuration
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer ended by SIGPIPE


class UsageError(Exception):
    """A bad argument, or a configuration the command cannot work with: exit status 2, the
    message on stderr."""


class StoreFailed(Exception):
    """The account store failed (its redacted URI is in the message): exit status 1."""
