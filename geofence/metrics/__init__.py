"""Metrics: decision counts and database facts for Prometheus and OpenTelemetry (``[metrics]``).

Requests only count (see ``_tally.py``); collectors read the counts when they are scraped.
:func:`attach` is called by every engine whose policy has ``[metrics]``.
"""

from __future__ import annotations

from typing import Any

from geofence.metrics._tally import TALLY, Tally

__all__ = ["TALLY", "Tally", "attach"]


def attach(engine: Any) -> None:
    """Make ``engine``'s databases, rules and events visible to the collectors ``[metrics]``
    asks for. Idempotent; any number of engines per process (each held weakly)."""
    from geofence.metrics._sources import SOURCES

    SOURCES.attach(engine)
    metrics = engine.policy.metrics
    if metrics.prometheus:
        # Imported here: the extra is only needed when asked for (the loader checks it).
        from geofence.metrics import _multiprocess, _prometheus

        _prometheus.register()
        if _multiprocess.enabled():
            _multiprocess.start()
    if metrics.opentelemetry:
        from geofence.metrics import _opentelemetry

        _opentelemetry.install()
