"""What happens to an engine's databases, told to the app and to the operator.

The app hears it as events (``db_reloaded``, ``db_refused``, ``db_error``: see
:class:`geofence.Event`); the operator reads a WARNING when a database is older than
``geoip.max_age``: when it is loaded (the engine is built), after each reload, and once a day
while it stays stale. The daily check rides on the reload checks the databases already make
(every ``geoip.reload_interval`` seconds, on the engine's clock); with ``reload_interval = 0``
the engine still polls its databases once a day when ``max_age`` is set, and
:func:`check_age` judges the databases that do not reload. No request pays for it, and no
thread is started.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

from geofence._events import Emitter, Event
from geofence._logs import escape, logger

DAY = 86_400.0  # seconds between two warnings about a database that stays stale


class _HasEvents(Protocol):
    events: Emitter


class Built(Protocol):
    """What the watch reads of a database: a :class:`geofence.geoip.MaxMindDB`."""

    path: str
    database_type: str
    build_epoch: int
    description: str


def db_name(key: str) -> str:
    """``geoip.country_db`` -> ``country``: the ``db`` of events and metric labels."""
    return key.removeprefix("geoip.").removesuffix("_db")


def built_at(epoch: int) -> datetime | None:
    """A database's metadata build date, or None when it has none usable (0, absurd)."""
    if epoch <= 0:
        return None
    try:
        return datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


class DatabaseWatch:
    """Shared by the databases of one engine. ``clock``: the engine's monotonic clock, which
    schedules the daily stale warning. ``wall``: the current Unix time, against which build
    dates are aged; by default the wall time at creation moved on by ``clock``, so that a test
    that drives the engine's clock also ages its databases."""

    def __init__(
        self,
        max_age: float | None,
        clock: Callable[[], float],
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        if wall is None:
            origin_wall, origin = time.time(), clock()

            def wall() -> float:
                return origin_wall + (clock() - origin)

        self._wall = wall
        self._owner: weakref.ref[_HasEvents] | None = None
        self._lock = threading.Lock()
        # key -> when (engine clock) a still-stale database is warned about again
        self._next_warning: dict[str, float] = {}

    def connect(self, owner: _HasEvents) -> None:
        """Send events to ``owner.events`` (the engine's emitter, which adapters add their
        signals to). Held weakly: databases must not keep their engine alive."""
        self._owner = weakref.ref(owner)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall(), timezone.utc)

    def emit(self, kind: str, detail: Mapping[str, object]) -> None:
        owner = self._owner() if self._owner is not None else None
        events: Emitter | None = getattr(owner, "events", None)
        if events is not None and events.active:
            events.emit(Event(kind=kind, at=self.now(), detail=MappingProxyType(dict(detail))))

    # -- what the databases report -------------------------------------------------------------

    def loaded(self, db: Built, key: str) -> None:
        """``db`` was opened when the engine was built."""
        if self.max_age is not None:
            # A database that cannot be referenced weakly (a test double): no daily check.
            with contextlib.suppress(TypeError):
                _WATCHED[db] = (self, key)
        self._check_age(db, key, "at load", always=True)

    def reloaded(self, db: Built, key: str, previous: Built) -> None:
        """``db`` replaced ``previous`` (its file was replaced on disk)."""
        self.emit(
            "db_reloaded",
            {
                "db": db_name(key),
                "key": key,
                "path": db.path,
                "description": db.description,
                "database_type": db.database_type,
                "built": built_at(db.build_epoch),
                "previous_built": built_at(previous.build_epoch),
            },
        )
        self._check_age(db, key, "after reload", always=True)

    def refused(self, key: str, path: str, reason: str) -> None:
        """A replacement of ``path`` failed validation; the database loaded before answers."""
        self.emit("db_refused", {"db": db_name(key), "key": key, "path": path, "reason": reason})

    def checked(self, db: Built, key: str) -> None:
        """A periodic check of ``db`` (its reload check): the daily stale warning, if due."""
        if self.max_age is not None:
            self._check_age(db, key, "still", always=False)

    def _check_age(self, db: Built, key: str, when: str, *, always: bool) -> None:
        max_age = self.max_age
        if max_age is None:
            return
        built = built_at(db.build_epoch)
        if built is None:
            return
        age = self._wall() - db.build_epoch
        now = self._clock()
        with self._lock:
            if age <= max_age:
                self._next_warning.pop(key, None)
                return
            due = self._next_warning.get(key)
            if not always and due is not None and now < due:
                return
            self._next_warning[key] = now + DAY
        logger.warning(
            "%s: %s is stale %s: built %s, %s ago, more than geoip.max_age (%s); "
            "update the file (e.g. with geoipupdate)",
            key,
            escape(db.description, 500),
            when,
            built.strftime("%Y-%m-%d %H:%M UTC"),
            _age(age),
            _setting(max_age),
            extra={
                "geofence": {
                    "db": db_name(key),
                    "key": key,
                    "path": escape(db.path, 500),
                    "built": built.isoformat(),
                    "age_seconds": round(age),
                    "max_age_seconds": max_age,
                }
            },
        )


# database -> (its watch, its config key): how a database that does not reload (a plain
# MaxMindDB, whose class is not ours to extend) finds its watch for the daily check. Weak:
# a database that goes away takes its entry with it.
_WATCHED: weakref.WeakKeyDictionary[Any, tuple[DatabaseWatch, str]] = weakref.WeakKeyDictionary()


def check_age(db: object) -> None:
    """The daily stale check of a database that does not reload (the engine's poll calls it;
    a reloading database makes its own at each reload check)."""
    try:
        watched = _WATCHED.get(db)
    except TypeError:
        return
    if watched is not None:
        watch, key = watched
        watch.checked(db, key)  # type: ignore[arg-type]


def failure_event(
    key: str, db: Any, error: BaseException, address: str, at: datetime | None = None
) -> Event:
    """The ``db_error`` event of a failed lookup in ``db``: one per failed lookup (the log
    line about it is rate-limited, the event is not, so that it can be counted). The
    client's address is cut out of the error's text: an event carries no address beyond
    ``decision.client_ip``, and a db_error event has no decision."""
    text = _describe(error).replace(address, "<address>") if address else _describe(error)
    description = getattr(db, "description", None)
    return Event(
        kind="db_error",
        at=at if at is not None else datetime.now(timezone.utc),
        detail=MappingProxyType(
            {
                "db": db_name(key),
                "key": key,
                "description": description if isinstance(description, str) else None,
                "error": escape(text, 500),
            }
        ),
    )


def _describe(error: BaseException) -> str:
    try:
        detail = str(error)
    except Exception:  # a broken __str__ must not turn a reported failure into a crash
        detail = ""
    name = type(error).__name__
    return f"{name}: {detail}" if detail else name


def _age(seconds: float) -> str:
    """An age in whole units, rounded down (as ``geofence validate`` shows it)."""
    for unit, size in (("day", DAY), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{int(seconds)} seconds"


def _setting(seconds: float) -> str:
    """A duration as the config writes it: "30d", "36h", "90s"."""
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
