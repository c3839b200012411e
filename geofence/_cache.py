"""The one bounded cache behind every memo in geofence.

Every cache here is keyed by something a client controls (an address, a path, a header value),
so none may grow without bound. The policy is the simplest one that is safe under a flood: when
the cache is full it is emptied, then refilled by whatever is asked next. A flood of distinct
keys therefore costs a refill, never memory, and the common case (few distinct keys) never
evicts at all. An LRU would cost a bookkeeping step on every hit, which is the path that runs
for every request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from geofence.hotpath import NATIVE

K = TypeVar("K")
V = TypeVar("V")


def bounded_put_python(cache: dict[K, V], limit: int, key: K, value: V) -> V:
    """Remember ``value`` under ``key`` in a plain ``dict`` bounded to ``limit`` entries, with
    the same policy as :class:`BoundedCache`; return ``value``.

    For the few caches read on every request (the engine's decision cache): CPython
    specialises method calls on an exact ``dict`` only, so ``.get`` on a subclass costs about
    170 more instructions per call.
    """
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


# bounded_put_python in C when geofence.hotpath._native is built: every new client writes two such
# caches, and a Python frame costs more than the three lines.
if TYPE_CHECKING:
    bounded_put = bounded_put_python
else:
    bounded_put = bounded_put_python if NATIVE is None else NATIVE.bounded_put


class BoundedCache(dict[K, V]):
    """A ``dict`` that empties itself instead of growing past ``limit`` entries.

    Reads are plain ``dict`` reads (``cache.get(key)`` runs at C speed, which is why this is a
    subclass and not a wrapper); writes go through :meth:`put`. Callers decide which keys are
    too large to be worth remembering (a megabyte-long path should not be pinned in memory).
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError("a BoundedCache needs a limit of at least 1")
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` (emptying the cache first when it is full) and
        return ``value``, so that ``return cache.put(key, compute(key))`` reads naturally."""
        # bounded_put's three lines, not a call to it: a write is on the path of every new
        # client, and a call costs more than the lines.
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value

    def __repr__(self) -> str:
        return f"BoundedCache(limit={self.limit}, size={len(self)})"
