"""``[metrics] prometheus``: one collector in prometheus_client's registry, read when scraped.

The collector makes no prometheus_client call per request: at each scrape it reads the
process's decision tally, the event counts and the attached engines (``_sources.py``).
Under Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), see ``_multiprocess.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from geofence.metrics._sources import SOURCES, Sources, decisions

DECISION_LABELS = ("action", "enforced", "reason", "rule", "country")

HELP = {
    "geofence_decisions": "Decisions geofence made, allowed ones included.",
    "geofence_db_build_timestamp_seconds": (
        "Build date of the database answering now (its metadata build_epoch), Unix seconds."
    ),
    "geofence_db_reloads": "Replaced database files picked up (success) or refused.",
    "geofence_db_lookup_errors": "Database lookups that failed.",
    "geofence_rule_phase": "Phase of each rule now: 0 off, 1 warn (grace period), 2 enforce.",
    "geofence_account_events": "Account transitions (grace started, strike, suspended, ...).",
    "geofence_store_errors": (
        "Times the account store stopped answering (store_error events: a circuit breaker opened)."
    ),
}


class GeofenceCollector(Collector):
    """Every geofence metric, from ``sources`` at collection time."""

    def __init__(self, sources: Sources = SOURCES, now: datetime | None = None) -> None:
        self._sources = sources
        self._now = now  # None: the current time (tests pin it)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        sources = self._sources
        decided = CounterMetricFamily(
            "geofence_decisions", HELP["geofence_decisions"], labels=DECISION_LABELS
        )
        for labels, count in decisions():
            decided.add_metric(labels, count)
        yield decided

        built = GaugeMetricFamily(
            "geofence_db_build_timestamp_seconds",
            HELP["geofence_db_build_timestamp_seconds"],
            labels=("db",),
            unit="seconds",
        )
        for db, stamp in sorted(sources.build_timestamps().items()):
            built.add_metric((db,), stamp)
        yield built

        reloads = CounterMetricFamily(
            "geofence_db_reloads", HELP["geofence_db_reloads"], labels=("db", "result")
        )
        for key, count in sorted(sources.reloads.snapshot().items()):
            reloads.add_metric(key, count)
        yield reloads

        errors = CounterMetricFamily(
            "geofence_db_lookup_errors", HELP["geofence_db_lookup_errors"], labels=("db",)
        )
        for key, count in sorted(sources.lookup_errors.snapshot().items()):
            errors.add_metric(key, count)
        yield errors

        phases = GaugeMetricFamily(
            "geofence_rule_phase", HELP["geofence_rule_phase"], labels=("rule",)
        )
        for rule, phase in sorted(sources.rule_phases(self._now).items()):
            phases.add_metric((rule,), phase)
        yield phases

        accounts = CounterMetricFamily(
            "geofence_account_events", HELP["geofence_account_events"], labels=("kind",)
        )
        for key, count in sorted(sources.account_events.snapshot().items()):
            accounts.add_metric(key, count)
        yield accounts

        store = CounterMetricFamily("geofence_store_errors", HELP["geofence_store_errors"])
        store.add_metric((), sources.store_errors.snapshot().get((), 0))
        yield store


_registered: GeofenceCollector | None = None
_lock = threading.Lock()


def register(registry: CollectorRegistry = REGISTRY) -> GeofenceCollector:
    """The process's collector, registered in ``registry`` on the first call only."""
    global _registered  # noqa: PLW0603 - one collector per process, however many engines
    with _lock:
        if _registered is None:
            collector = GeofenceCollector()
            registry.register(collector)
            _registered = collector
        return _registered
