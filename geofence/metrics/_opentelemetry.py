"""``[metrics] opentelemetry``: observable instruments on the global meter ``geofence``.

Every instrument is observable: the SDK calls its callback when it collects, and the callback
reads the same counts the Prometheus collector reads (``_sources.py``). A request makes no
OpenTelemetry call (an ``add()`` per request costs microseconds), and with the API alone (no
SDK configured) nothing ever calls the callbacks.

Attribute names follow the semantic conventions where one exists (``geo.country.iso_code``,
``security_rule.name``) and live under ``geofence.`` otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from opentelemetry.metrics import CallbackOptions, Meter, Observation, get_meter

from geofence.metrics._sources import SOURCES, Sources, decisions


class Instruments:
    """The geofence instruments on ``meter``, reading ``sources``."""

    def __init__(
        self, meter: Meter, sources: Sources = SOURCES, now: datetime | None = None
    ) -> None:
        self._sources = sources
        self._now = now  # None: the current time (tests pin it)
        meter.create_observable_counter(
            "geofence.decisions",
            callbacks=[self._decisions],
            unit="{decision}",
            description="Decisions geofence made, allowed ones included.",
        )
        meter.create_observable_gauge(
            "geofence.db.build_timestamp",
            callbacks=[self._built],
            unit="s",
            description="Build date of the database answering now, Unix seconds.",
        )
        meter.create_observable_counter(
            "geofence.db.reloads",
            callbacks=[self._reloads],
            unit="{reload}",
            description="Replaced database files picked up (success) or refused.",
        )
        meter.create_observable_counter(
            "geofence.db.lookup_errors",
            callbacks=[self._lookup_errors],
            unit="{error}",
            description="Database lookups that failed.",
        )
        meter.create_observable_gauge(
            "geofence.rule.phase",
            callbacks=[self._phases],
            unit="1",
            description="Phase of each rule now: 0 off, 1 warn (grace period), 2 enforce.",
        )
        meter.create_observable_counter(
            "geofence.account.events",
            callbacks=[self._accounts],
            unit="{event}",
            description="Account transitions (grace started, strike, suspended, ...).",
        )
        meter.create_observable_counter(
            "geofence.store.errors",
            callbacks=[self._store],
            unit="{error}",
            description="Times the account store stopped answering (store_error events).",
        )

    def _decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        for (action, enforced, reason, rule, country), count in decisions():
            yield Observation(
                count,
                {
                    "geofence.action": action,
                    "geofence.enforced": enforced == "true",
                    "geofence.reason": reason,
                    "security_rule.name": rule,
                    "geo.country.iso_code": country,
                },
            )

    def _built(self, options: CallbackOptions) -> Iterable[Observation]:
        for db, stamp in self._sources.build_timestamps().items():
            yield Observation(stamp, {"geofence.db": db})

    def _reloads(self, options: CallbackOptions) -> Iterable[Observation]:
        for (db, result), count in self._sources.reloads.snapshot().items():
            yield Observation(count, {"geofence.db": db, "geofence.result": result})

    def _lookup_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for (db,), count in self._sources.lookup_errors.snapshot().items():
            yield Observation(count, {"geofence.db": db})

    def _phases(self, options: CallbackOptions) -> Iterable[Observation]:
        for rule, phase in self._sources.rule_phases(self._now).items():
            yield Observation(phase, {"security_rule.name": rule})

    def _accounts(self, options: CallbackOptions) -> Iterable[Observation]:
        for (kind,), count in self._sources.account_events.snapshot().items():
            yield Observation(count, {"geofence.event.kind": kind})

    def _store(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._sources.store_errors.snapshot().get((), 0))


_made: Instruments | None = None
_lock = threading.Lock()


def install() -> Instruments:
    """The instruments on the global meter, made on the first call only (the global meter
    forwards them to whichever SDK provider is set, before or after this)."""
    global _made  # noqa: PLW0603 - one set of instruments per process
    with _lock:
        if _made is None:
            _made = Instruments(get_meter("geofence"))
        return _made
