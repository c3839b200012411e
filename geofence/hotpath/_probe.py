"""The engine's decision-cache hit path: :func:`make_probe`, and :class:`Probe` in Python.

A repeated client is answered from the engine's decision cache when the wall clock is still in the
window in which nothing can change (no rule changes phase, no database check is due) and its entry
carries the current epoch. ``geofence.hotpath._hotpath.Probe`` (geofence/hotpath/_hotpath.c) does
that in C; :class:`Probe` here is its twin, with the same behaviour, for a build without a compiler
or with ``GEOFENCE_PURE_PYTHON`` set (read once, at import).

Every method answers None whenever the slow path must decide (a miss, a stale entry, a
decision that must be logged, or any error while probing: the slow path then does everything
properly, errors included). An entry is ``(epoch, decision, attention, answer)``, a tuple of
exactly four items (anything else is no entry), attention being True (observe the decision),
False (quiet) or a counter whose ``next()`` counts one.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from geofence._model import RequestInfo
from geofence.hotpath import ENV_PURE

if TYPE_CHECKING:
    from geofence.hotpath import _hotpath

K = TypeVar("K", bound=tuple[Any, ...])  # the cache's key type
D = TypeVar("D")  # the decision an entry holds
A = TypeVar("A")  # the answer an entry holds
D_co = TypeVar("D_co", covariant=True)
A_co = TypeVar("A_co", covariant=True)
# An entry as the probes read it: (epoch, decision, attention, answer).
ProbeEntry = tuple[Any, D, Any, A]


class CacheProbe(Protocol[D_co, A_co]):
    """What both probes offer (the C one and :class:`Probe`)."""

    def set(self, start: float, end: float, epoch: object, /) -> None: ...

    def decision(self, request: RequestInfo, /) -> D_co | None: ...

    def answer(self, peer: object, method: object, path: object, /) -> A_co | None: ...

    def entry(self, request: RequestInfo, /) -> tuple[Any, D_co, Any, A_co] | None: ...


def _seconds(value: object) -> float:
    """A window bound as C's ``PyFloat_AsDouble`` reads it: a float, ``__float__`` or an
    integer (``__index__``); a string is refused."""
    if isinstance(value, float):
        return value
    to_float = getattr(type(value), "__float__", None)
    if to_float is not None:
        return float(to_float(value))
    return float(operator.index(value))  # type: ignore[arg-type]  # TypeError when not one


class Probe(Generic[D, A]):
    """``Probe(cache, clock)``: answers from ``cache`` (the engine's decision cache, an exact
    dict, cleared but never replaced) while ``clock()`` (the engine's wall clock) is inside
    the window given to :meth:`set`, for entries that carry the epoch given with it."""

    # The window and its epoch are one tuple, replaced whole: a reader on another thread gets
    # either the old or the new one, never a mix.
    __slots__ = ("_cache", "_clock", "_window")

    def __init__(self, cache: dict[Any, ProbeEntry[D, A]], clock: Callable[[], float]) -> None:
        if type(cache) is not dict:
            raise TypeError(f"Probe(): cache must be a dict, not {type(cache).__name__}")
        if not callable(clock):
            raise TypeError(f"Probe(): clock must be callable, not {type(clock).__name__}")
        self._cache = cache
        self._clock = clock
        # An empty window: every probe misses until set().
        self._window: tuple[float, float, object] = (0.0, 0.0, None)

    def set(self, start: float, end: float, epoch: object, /) -> None:
        """The window ``[start, end)`` of the wall clock and the epoch valid entries carry
        (compared by identity)."""
        self._window = (_seconds(start), _seconds(end), epoch)

    # The three lookups repeat the same lines rather than share a function: a Python call is
    # a measurable part of a cache hit. The window is read after the clock: a set() that
    # comes first is seen whole. An entry is a tuple (or a subclass) of exactly four items:
    # type() first, as isinstance() and len() would cost a fifth of a hit; unpacking four
    # names raises ValueError for any other length.

    def decision(self, request: RequestInfo, /) -> D | None:
        """The decision of a repeated request that needs no observing (counted if it is
        counted), else None."""
        try:
            wall = self._clock()
            start, end, epoch = self._window
            if not start <= wall < end:
                return None
            entry = self._cache.get((request.peer, request.method, request.path))
            if type(entry) is not tuple and not isinstance(entry, tuple):
                return None  # None: a miss
            stamp, decision, attention, _ = entry
            if stamp is not epoch:
                return None
            if attention is False:
                return decision
            if attention is True:
                return None  # the caller observes it (logs, events)
            next(attention)
        except Exception:  # the slow path decides, and reports what is wrong
            return None
        return decision

    def answer(self, peer: object, method: object, path: object, /) -> A | None:
        """:meth:`decision`'s checks for the key ``(peer, method, path)``; the entry's
        answer."""
        try:
            wall = self._clock()
            start, end, epoch = self._window
            if not start <= wall < end:
                return None
            entry = self._cache.get((peer, method, path))
            if type(entry) is not tuple and not isinstance(entry, tuple):
                return None
            stamp, _, attention, answer = entry
            if stamp is not epoch:
                return None
            if attention is False:
                return answer
            if attention is True:
                return None
            next(attention)
        except Exception:  # the slow path decides, and reports what is wrong
            return None
        return answer

    def entry(self, request: RequestInfo, /) -> ProbeEntry[D, A] | None:
        """The valid entry of a repeated request whatever its attention (the caller
        observes or counts it), else None."""
        try:
            wall = self._clock()
            start, end, epoch = self._window
            if not start <= wall < end:
                return None
            entry = self._cache.get((request.peer, request.method, request.path))
            if type(entry) is not tuple and not isinstance(entry, tuple):
                return None
            stamp, _, _, _ = entry
        except Exception:  # the slow path decides, and reports what is wrong
            return None
        return entry if stamp is epoch else None


def _native_type() -> type[_hotpath.Probe[Any, Any]] | None:
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        return None
    try:
        from geofence.hotpath import _hotpath
    except ImportError:  # not built (no compiler), or built for another Python
        return None
    return _hotpath.Probe


_NativeProbe = _native_type()
#: Whether :func:`make_probe` gives the C probe.
NATIVE = _NativeProbe is not None


def make_probe(cache: dict[Any, ProbeEntry[D, A]], clock: Callable[[], float]) -> CacheProbe[D, A]:
    """The C probe when it is built (and ``GEOFENCE_PURE_PYTHON`` is not set), else
    :class:`Probe`: the same behaviour."""
    if _NativeProbe is not None:
        native: CacheProbe[D, A] = _NativeProbe(cache, clock)
        return native
    return Probe(cache, clock)


#: :func:`front`'s kinds.
FRONT_DECIDE = 0
FRONT_CACHED = 1
FRONT_ANSWER = 2
FRONT_QUICK = 3


def front(kind: int, slow: Callable[..., Any]) -> Callable[..., Any]:
    """What the engine's class holds as ``decide`` (kind 0), ``cached`` (kind 1), ``answer``
    (kind 2) or ``quick`` (kind 3): with the C probe, ``geofence.hotpath._hotpath.Front``, which
    asks the engine's probe itself for the common call (and, on a miss, the engine's compiled
    new-client step) and calls ``slow`` (the Python method) for everything else, without a Python
    frame in between (about half of a repeated request's cost in ``decide()``); else ``slow``."""
    if _NativeProbe is None:
        return slow
    from geofence.hotpath import _hotpath

    made: Callable[..., Any] = _hotpath.Front(kind, slow)
    return made


def key_type(base: type[K]) -> type[K]:
    """The type of the decision cache's keys: with the C probe, a subclass of ``base`` (made by
    ``geofence.hotpath._hotpath.key_type``) whose ``==`` compares string items directly instead of
    through the generic comparison, a few hundred instructions of every cache hit; else
    ``base``. Equal, hashed and shown as ``base``'s instances are."""
    if _NativeProbe is None:
        return base
    from geofence.hotpath import _hotpath

    made: type[K] = _hotpath.key_type(base)  # type: ignore[assignment]
    return made
