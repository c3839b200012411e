"""Exceptions raised by geofence."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad configuration or database, raised while the engine is built, never per request.

    ``key`` is the path of the offending setting (``rules[2].regions[0]``, ``geoip.country_db``),
    ``reason`` says what is wrong and, where we can tell, how to fix it.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


class DatabaseError(Exception):
    """A lookup failed at request time (file vanished, corrupt record, ...).

    Internal: the engine turns it into a ``db_error`` decision and never lets it escape.
    """
