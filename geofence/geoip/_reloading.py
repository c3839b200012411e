"""Picking up a database file replaced on disk, without a single failed lookup.

No background thread: the lookup path compares the injected monotonic clock with a deadline,
and whichever thread passes it first (the others carry on) stats the file. A changed file is
opened and fully validated *before* it is swapped in with one attribute assignment, so a
concurrent lookup sees either the old database or the new one, never a half-loaded one, and a
rejected file never answers anything. The old database is not closed by the reloader: other
threads may still be inside a lookup on it. It closes itself (``MaxMindDB.__del__``) once the
last of them lets go, so no file descriptor or memory map outlives it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from geofence._errors import ConfigError
from geofence._logs import logger
from geofence.clientip._addresses import IP
from geofence.geoip._kinds import signature

if TYPE_CHECKING:
    from geofence.geoip._mmdb import MaxMindDB
    from geofence.geoip._watch import DatabaseWatch

T = TypeVar("T")


def log_loaded(db: MaxMindDB[T], key: str, again: bool) -> None:
    logger.info(
        "%s: %s %s database %r (built %s)",
        key,
        "reloaded" if again else "loaded",
        db.database_type,
        db.path,
        db.built(),
    )


class Reloading(Generic[T]):
    """A database that follows its file. Looks like the :class:`MaxMindDB` it wraps."""

    def __init__(
        self,
        first: MaxMindDB[T],
        opener: Callable[[], MaxMindDB[T]],
        key: str,
        interval: float,
        clock: Callable[[], float],
        watch: DatabaseWatch | None = None,
    ) -> None:
        self._current = first
        # Told of reloads and refusals (events), and asked for the daily stale warning.
        self._watch = watch
        self._opener = opener
        self._key = key
        self._path = first.path
        self._interval = interval
        self._clock = clock
        self._deadline = clock() + interval
        self._lock = threading.Lock()
        self._signature = first.signature
        # The signature of the last file refused, so it is refused (and logged) only once.
        self._rejected: tuple[int, ...] | None = None
        self._problem: str | None = None  # last "cannot stat" problem logged
        # Replacing a City database by a Country one would silently disable subdivision rules.
        self.has_subdivisions = first.has_subdivisions
        self.description = first.description
        self.reloads = 0  # successful swaps: a generation number for caches, and for monitoring
        self.rejections = 0

    def poll(self) -> None:
        """Check the file now if the interval has passed (the engine calls this on cache hits,
        which skip lookups)."""
        if self._clock() >= self._deadline:
            self._check()

    def lookup(self, ip: str) -> T:
        if self._clock() >= self._deadline:
            self._check()
        current = self._current  # read once: the answer and the cache it goes to must agree
        hit = current.cache.get(ip)
        if hit is not None:
            return hit
        return current.miss(ip)

    def find_prefix(self, ip: IP) -> tuple[T, int]:
        if self._clock() >= self._deadline:
            self._check()
        return self._current.find_prefix(ip)

    def finder(self) -> Callable[[IP], tuple[T, int]]:
        """The current database's :meth:`MaxMindDB.finder`: its ``find_prefix`` without the
        check of the file, for a caller that calls :meth:`poll` on its own schedule and asks
        for a new finder when :attr:`reloads` moves (the engine)."""
        return self._current.finder()

    def find(self, ip: IP) -> T:
        if self._clock() >= self._deadline:
            self._check()
        return self._current.find(ip)  # one read: the database and its caches go together

    def _check(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is checking; this lookup uses the database as it is
        try:
            now = self._clock()
            if now < self._deadline:
                return
            self._deadline = now + self._interval
            self._reload_if_changed()
            if self._watch is not None:
                self._watch.checked(self._current, self._key)
        except Exception:
            # A reload problem must never fail the lookup that happened to trigger it.
            logger.exception("%s: checking %r for a new version failed", self._key, self._path)
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> None:
        try:
            current = signature(self._path)
        except (OSError, ValueError) as error:
            problem = f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"
            if problem != self._problem:
                self._problem = problem
                logger.error(
                    "%s: %r cannot be checked for updates (%s); still using the database "
                    "loaded before",
                    self._key,
                    self._path,
                    problem,
                )
            return
        self._problem = None
        if current in (self._signature, self._rejected):
            return
        try:
            new = self._opener()
            if self.has_subdivisions and not new.has_subdivisions:
                new.close()
                raise ConfigError(
                    self._key,
                    f"the new file is a {new.database_type} database, without the "
                    "subdivisions the policy's rules need",
                )
        except ConfigError as error:
            self._rejected = current
            self.rejections += 1
            logger.error(
                "%s: the replaced file was refused, still using the database loaded before: %s",
                self._key,
                error.reason,
            )
            if self._watch is not None:
                self._watch.refused(self._key, self._path, error.reason)
            return
        # The signature from before the open: if the file changed again in between, the
        # next check sees a difference and loads it again, which is harmless.
        self._signature = new.signature
        self._rejected = None
        self.description = new.description
        previous = self._current
        self._current = new  # the swap: one reference assignment, atomic for every reader
        self.reloads += 1
        log_loaded(new, self._key, again=True)
        if self._watch is not None:
            self._watch.reloaded(new, self._key, previous)
