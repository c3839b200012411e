"""Decision counts kept in the process, read when a collector asks (never pushed per request).

The engine keeps, in each cached decision, the counter of that decision's labels; a request
that hits the cache calls it (one C-level call). Collectors (Prometheus, OpenTelemetry) read
:meth:`Tally.snapshot` when they are scraped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from geofence._model import Decision

# action, enforced, reason, rule, country: never an IP, path, account or subdivision.
Labels = tuple[str, str, str, str, str]


def labels(decision: Decision) -> Labels:
    return (
        decision.action,
        "true" if decision.enforced else "false",
        decision.reason,
        decision.rule or "",
        decision.country or "",
    )


class Tally:
    """Counts per label set. ``counter(decision)`` is what the hot path calls."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Labels, itertools.count[int]] = {}

    def counter(self, decision: Decision) -> Callable[[], object]:
        """A callable that adds one to ``decision``'s labels (thread-safe: a C call)."""
        key = labels(decision)
        count = self._counts.get(key)
        if count is None:
            with self._lock:
                count = self._counts.setdefault(key, itertools.count(1))
        return count.__next__

    def add(self, decision: Decision) -> None:
        self.counter(decision)()

    def snapshot(self) -> dict[Labels, int]:
        """Every label set with its count so far."""
        with self._lock:
            items = list(self._counts.items())
        # An itertools.count shows its next value in its repr: "count(8)" has counted 7.
        return {key: int(repr(count)[6:-1]) - 1 for key, count in items}


#: The process's tally: every engine with [metrics] counts here, and collectors read it.
TALLY = Tally()
