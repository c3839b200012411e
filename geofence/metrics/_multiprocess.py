"""Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, e.g. gunicorn workers).

There, a scrape reads ``MultiProcessCollector``, which knows only the files prometheus_client's
own Counter and Gauge objects write; a custom collector's values never reach them. So each
worker copies its counts into real Counter and Gauge objects (not registered in any registry:
their values go to the worker's files all the same) from a daemon thread, once a second and
once more at exit. Requests keep making no prometheus_client call, and a scrape is at most
about a second behind the workers (:data:`INTERVAL`).

Counters receive the growth since the last copy; gauges are set: the database build date with
``livemin`` (the oldest database any live worker answers with), rule phases with ``livemax``.
For the live modes, gunicorn's ``child_exit`` hook must call
``prometheus_client.multiprocess.mark_process_dead(worker.pid)`` (prometheus_client's own
multiprocess instructions), or a dead worker's gauges keep being reported.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from prometheus_client import Counter, Gauge, values

from geofence.metrics._prometheus import DECISION_LABELS, HELP
from geofence.metrics._sources import SOURCES, Counts, Sources, decisions

INTERVAL = 1.0  # seconds between two copies: how far behind the workers a scrape may be

Key = tuple[str, ...]


def enabled() -> bool:
    """Whether this process runs in Prometheus multiprocess mode: prometheus_client chose,
    when it was imported, to keep values in files (``PROMETHEUS_MULTIPROC_DIR`` was set)."""
    return values.ValueClass is not values.MutexValue


class Flusher:
    """Copies the process's counts into prometheus_client's multiprocess files."""

    def __init__(self, sources: Sources = SOURCES) -> None:
        self._sources = sources
        self._lock = threading.Lock()
        # registry=None: written to the files only, never a second geofence_* in REGISTRY
        # (the custom collector there serves a scrape of this process alone).
        self._decisions = Counter(
            "geofence_decisions", HELP["geofence_decisions"], DECISION_LABELS, registry=None
        )
        self._reloads = Counter(
            "geofence_db_reloads", HELP["geofence_db_reloads"], ("db", "result"), registry=None
        )
        self._errors = Counter(
            "geofence_db_lookup_errors", HELP["geofence_db_lookup_errors"], ("db",), registry=None
        )
        self._accounts = Counter(
            "geofence_account_events", HELP["geofence_account_events"], ("kind",), registry=None
        )
        self._store = Counter("geofence_store_errors", HELP["geofence_store_errors"], registry=None)
        self._built = Gauge(
            "geofence_db_build_timestamp_seconds",
            HELP["geofence_db_build_timestamp_seconds"],
            ("db",),
            registry=None,
            multiprocess_mode="livemin",
        )
        self._phases = Gauge(
            "geofence_rule_phase",
            HELP["geofence_rule_phase"],
            ("rule",),
            registry=None,
            multiprocess_mode="livemax",
        )
        # What each counter had when last copied: the next copy adds the growth only.
        self._copied: dict[tuple[str, Key], int] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def flush(self) -> None:
        """Copy every count's growth and every gauge's value now."""
        with self._lock:
            self._grow("decisions", dict(decisions()), self._decisions.labels)
            sources = self._sources
            self._grow_counts("reloads", sources.reloads, self._reloads.labels)
            self._grow_counts("errors", sources.lookup_errors, self._errors.labels)
            self._grow_counts("accounts", sources.account_events, self._accounts.labels)
            grown = self._growth("store", (), sources.store_errors.snapshot().get((), 0))
            if grown:
                self._store.inc(grown)
            for db, stamp in sources.build_timestamps().items():
                self._built.labels(db).set(stamp)
            for rule, phase in sources.rule_phases().items():
                self._phases.labels(rule).set(phase)

    def _grow_counts(self, name: str, counts: Counts, child: Callable[..., Counter]) -> None:
        self._grow(name, counts.snapshot(), child)

    def _grow(self, name: str, now: dict[Key, int], child: Callable[..., Counter]) -> None:
        for key, value in now.items():
            grown = self._growth(name, key, value)
            if grown:
                child(*key).inc(grown)

    def _growth(self, name: str, key: Key, value: int) -> int:
        before = self._copied.get((name, key), 0)
        self._copied[name, key] = value
        return value - before

    def start(self) -> None:
        """Run the copying thread in this process (again in a forked child: threads do not
        survive a fork, and gunicorn may load the app in its master before forking)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the parent's thread may have held it at the fork
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="geofence-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while not wake.wait(INTERVAL):
            try:
                self.flush()
            except Exception:  # a metrics problem must never end the copying for good
                logging.getLogger("geofence").exception("copying metrics to files failed")

    def at_exit(self) -> None:
        if self._pid == os.getpid():
            self._wake.set()
            self.flush()


_flusher: Flusher | None = None
_lock = threading.Lock()


def start() -> Flusher:
    """The process's flusher, started once (and again after a fork)."""
    global _flusher  # noqa: PLW0603 - one per process
    with _lock:
        if _flusher is None:
            flusher = _flusher = Flusher()
            atexit.register(flusher.at_exit)
            os.register_at_fork(after_in_child=flusher.start)
        _flusher.start()
        return _flusher
