"""What the collectors read when they are scraped: the process's counts and the attached engines.

Nothing here runs per allowed request. Decisions are counted by the engine in :data:`TALLY`;
the rarer things (database reloads, lookup errors, account transitions, store errors) arrive
as :class:`geofence.Event` and are counted by one receiver per attached engine; database build
dates and rule phases are read from the engines themselves, held weakly so that attaching an
engine never keeps it (and its memory-mapped databases) alive.

Counts are per process and only go up, whatever happens to the engines that made them, as
Prometheus counters must.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from geofence._events import Event
from geofence.geoip._info import describe
from geofence.metrics._tally import TALLY

#: The databases an engine may have: ``db`` label -> the engine's attribute. The label is the
#: [geoip] key without ``_db``, as the db_* events name it (``geoip.country_db`` -> ``country``).
DATABASES = {"country": "country_db", "anonymous": "anonymous_db", "asn": "asn_db"}
ACCOUNT_KINDS = (
    "account_grace_started",
    "account_strike",
    "account_suspended",
    "account_home_mismatch",
)
_COUNTED = frozenset({*ACCOUNT_KINDS, "db_error", "db_reloaded", "db_refused", "store_error"})
#: geofence_rule_phase values.
OFF, WARN, ENFORCE = 0, 1, 2


class Counts:
    """Counts per key, for events (rare: a lock is cheap enough and keeps it exact)."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, ...], int]:
        with self._lock:
            return dict(self._counts)


class Sources:
    """The attached engines and the counts their events made (one per process: :data:`SOURCES`)."""

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.reloads = Counts()  # (db, result): result "success" or "refused"
        self.lookup_errors = Counts()  # (db,)
        self.account_events = Counts()  # (kind,)
        self.store_errors = Counts()  # ()

    def attach(self, engine: Any) -> bool:
        """Hold ``engine`` weakly and count its events; False when it was attached already."""
        with self._lock:
            if engine in self._engines:
                return False
            self._engines.add(engine)
        # The receiver holds the engine weakly too: the engine holds the receiver (in its
        # Emitter), and a strong reference back would make a cycle only the GC can free.
        ref = weakref.ref(engine)
        # Decisions are counted by the tally: no Event is built per block or warn for us.
        engine.events.add(lambda event: self.receive(event, ref()), requests=False)
        return True

    def engines(self) -> list[Any]:
        with self._lock:
            return list(self._engines)

    # -- events ---------------------------------------------------------------------------

    def receive(self, event: Event, engine: Any = None) -> None:
        """Count one event. Request kinds (block, warn, ...) are counted by the tally: they
        are the most frequent, and leave at the first test."""
        kind = event.kind
        if kind not in _COUNTED:
            return
        if kind == "db_error":
            self.lookup_errors.add((db_label(event.detail, engine),))
        elif kind == "db_reloaded":
            self.reloads.add((db_label(event.detail, engine), "success"))
        elif kind == "db_refused":
            self.reloads.add((db_label(event.detail, engine), "refused"))
        elif kind == "store_error":
            self.store_errors.add(())
        else:
            self.account_events.add((kind,))

    # -- what the engines say now ---------------------------------------------------------

    def build_timestamps(self) -> dict[str, float]:
        """db -> build date of the database answering now (Unix seconds). With several
        engines, the oldest of each kind: the age alerts are about the oldest one."""
        found: dict[str, float] = {}
        for engine in self.engines():
            for label, attribute in DATABASES.items():
                db = getattr(engine, attribute, None)
                if db is None:
                    continue
                epoch = describe(db).build_epoch  # None for the embedded default: no date
                if epoch is not None:
                    found[label] = min(found.get(label, float(epoch)), float(epoch))
        return found

    def rule_phases(self, now: datetime | None = None) -> dict[str, int]:
        """rule -> 0 (off), 1 (warn: a block rule in its grace period), 2 (enforce: its own
        action applies), at ``now``. A rule name in several engines: the furthest phase."""
        at = now if now is not None else datetime.now(timezone.utc)
        found: dict[str, int] = {}
        for engine in self.engines():
            policy = engine.policy
            for rule in policy.rules:
                phase = OFF if policy.mode == "off" else rule_phase(rule, at)
                found[rule.name] = max(found.get(rule.name, OFF), phase)
        return found


def rule_phase(rule: Any, at: datetime) -> int:
    """The phase of one ``RulePolicy`` at ``at`` (as the engine's ``Rule.action_at``)."""
    starts = rule.warn_from or rule.enforce_from
    if starts is not None and at < starts:
        return OFF
    if rule.enforce_from is not None and at < rule.enforce_from and rule.action == "block":
        return WARN
    return ENFORCE


def db_label(detail: Any, engine: Any) -> str:
    """Which database an event is about, as a bounded label: a key of :data:`DATABASES`.

    The event's detail names it (``"country"``), or by key (``"geoip.country_db"``) or by
    the database's description (which holds a file path: never a label value)."""
    named: object = None
    if hasattr(detail, "get"):
        for field in ("db", "key", "database"):
            named = detail.get(field)
            if isinstance(named, str):
                break
    if isinstance(named, str):
        short = named.removeprefix("geoip.").removesuffix("_db")
        if short in DATABASES:
            return short
        if engine is not None:
            for label, attribute in DATABASES.items():
                db = getattr(engine, attribute, None)
                if db is not None and getattr(db, "description", None) == named:
                    return label
    if engine is not None and engine.anonymous_db is None and engine.asn_db is None:
        return "country"  # the only one it has
    return "unknown"


def decisions() -> Iterator[tuple[tuple[str, str, str, str, str], int]]:
    """(action, enforced, reason, rule, country) and its count, for each label set seen."""
    yield from TALLY.snapshot().items()


#: The process's sources: every attached engine, whichever collectors read them.
SOURCES = Sources()
