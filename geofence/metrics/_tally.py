"""Decision counts kept in the process, read when a collector asks (never pushed per request).

The engine keeps, in each cached decision, the counter of that decision's labels; a request
that hits the cache calls it (one C-level call). Collectors (Prometheus, OpenTelemetry) read
:meth:`Tally.snapshot` when they are scraped.

The counter is the ``__next__`` of an ``itertools.repeat(None, START)``: each call counts one
down and returns None, under the GIL, without allocating anything. An ``itertools.count``
returns a new int on each call (allocated and freed again above 256): measured with callgrind
(bench/metrics.py), the repeat costs a cached request about 160 instructions less.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterator

from geofence._model import Decision

# action, enforced, reason, rule, country: never an IP, path, account or subdivision.
Labels = tuple[str, str, str, str, str]
# What each counter counts down from: 9.2e18 calls, never reached (a million a second would
# take 290,000 years).
START = sys.maxsize


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
        self._counts: dict[Labels, itertools.repeat[None]] = {}

    def counter(self, decision: Decision) -> Callable[[], object]:
        """A callable that adds one to ``decision``'s labels (thread-safe: a C call)."""
        return self.iterator(decision).__next__

    def iterator(self, decision: Decision) -> Iterator[None]:
        """The counter itself: each ``next()`` of it adds one to ``decision``'s labels. A hot
        path that keeps this and calls the builtin ``next`` on it saves about 100
        instructions per count over calling :meth:`counter`'s method wrapper (measured:
        ``python bench/metrics.py --only shapes``)."""
        key = labels(decision)
        count = self._counts.get(key)
        if count is None:
            with self._lock:
                count = self._counts.setdefault(key, itertools.repeat(None, START))
        return count

    def add(self, decision: Decision) -> None:
        self.counter(decision)()

    def snapshot(self) -> dict[Labels, int]:
        """Every label set with its count so far."""
        with self._lock:
            items = list(self._counts.items())
        # A repeat's length hint is how many calls it has left.
        return {key: START - count.__length_hint__() for key, count in items}


#: The process's tally: every engine with [metrics] counts here, and collectors read it.
TALLY = Tally()
