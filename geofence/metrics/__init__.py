"""Metrics: decision counts and database facts for Prometheus and OpenTelemetry (``[metrics]``).

(Collectors are being built, issue 12.)
"""

from __future__ import annotations

from typing import Any

from geofence.metrics._tally import TALLY, Tally

__all__ = ["TALLY", "Tally", "attach"]


def attach(engine: Any) -> None:
    """Make ``engine``'s databases and rules visible to the collectors ``[metrics]`` asks for."""
