"""``geofence.Event`` and the one guarded way the engine hands events to the app.

Events come from the engine, so they are the same whichever adapter (or none) asked. The
app's callback runs on the request's thread; whatever it raises is logged on the
``geofence`` logger and never reaches the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType

from geofence._logs import logger
from geofence._model import Decision
from geofence._record import field, record

#: Every kind DESIGN names, all emitted: the request kinds by the engine's Observer, the
#: account kinds and store_error by the accounts ledger, the database kinds by the databases
#: (geofence.geoip._watch) and the engine's lookup.
KINDS = frozenset(
    {
        "block",
        "warn",
        "would_block",
        "would_warn",
        "account_grace_started",
        "account_strike",
        "account_suspended",
        "account_home_mismatch",
        "db_reloaded",
        "db_refused",
        "db_error",
        "store_error",
    }
)

#: The kinds every reported request sends (one per block, warn or dry run), as opposed to the
#: account and database kinds, which are transitions.
REQUEST_KINDS = frozenset({"block", "warn", "would_block", "would_warn"})

_NOTHING: Mapping[str, object] = MappingProxyType({})


@record(frozen=True, slots=True)
class Event:
    """Something the engine did or saw, for ``on_event`` (and the Django and Flask signals).

    ``kind`` is one of :data:`KINDS`; ``at`` the decision's time (aware, UTC); ``decision``
    the request's decision when a request caused it; ``account`` the account's id or None;
    ``rule`` the rule's name or None; ``detail`` kind-specific facts, e.g. ``{"until":
    datetime}`` for ``account_grace_started`` and ``account_suspended``, ``{"country":
    "RU"}`` for ``account_home_mismatch``, ``{"error": "..."}`` for ``store_error``. The
    database kinds have no decision; their detail names the database as ``db`` (``country``,
    ``anonymous`` or ``asn``) and ``key`` (``geoip.country_db``, ...), plus: for
    ``db_reloaded`` ``path``, ``description``, ``database_type``, ``built`` and
    ``previous_built`` (aware datetimes, or None when the file has no build date); for
    ``db_refused`` ``path`` and ``reason``; for ``db_error`` (one per failed lookup)
    ``description`` and ``error`` (the client's address cut out). Never a client IP address
    beyond what ``decision.client_ip`` already holds.
    """

    kind: str
    at: datetime
    decision: Decision | None = None
    account: str | None = None
    rule: str | None = None
    detail: Mapping[str, object] = field(default_factory=lambda: _NOTHING)


EventCallback = Callable[[Event], object]


class Emitter:
    """Calls the app's ``on_event`` with each event; a callback that raises is logged (with
    its traceback) and the request goes on.

    A receiver may leave out the request kinds (:data:`REQUEST_KINDS`): the metrics count
    decisions their own way, and then a block or warn builds no Event unless someone wants it.
    A callback may also have a ``geofence_listening()`` method that says whether it would pass a
    request-kind event on to anyone now (the adapters' signals do: a signal without receivers
    takes none); while every such callback says no and no other takes them, blocks and warns
    build no Event. (Building one costs a request-kind decision about 20,000 instructions.)
    """

    __slots__ = ("_always", "_callbacks", "_checks", "_for_requests")

    def __init__(self, callback: EventCallback | None = None) -> None:
        self._callbacks: tuple[EventCallback, ...] = ()
        self._for_requests: tuple[EventCallback, ...] = ()
        self._always = False  # some receiver of request kinds has no geofence_listening()
        self._checks: tuple[Callable[[], bool], ...] = ()
        if callback is not None:
            self.add(callback)

    def add(self, callback: EventCallback, *, requests: bool = True) -> None:
        """Another receiver (an adapter's signal), called after the ones already there;
        ``requests=False``: not for block, warn, would_block and would_warn."""
        self._callbacks = (*self._callbacks, callback)
        if requests:
            self._for_requests = (*self._for_requests, callback)
            listening = getattr(callback, "geofence_listening", None)
            if callable(listening):
                self._checks = (*self._checks, listening)
            else:
                self._always = True

    @property
    def active(self) -> bool:
        return bool(self._callbacks)

    @property
    def wants_requests(self) -> bool:
        """Whether some receiver takes the request kinds now (else the engine builds none).
        A ``geofence_listening()`` that raises counts as listening: the event is built and sent, and
        the callback's own failure is logged as any other."""
        if self._always:
            return True
        for listening in self._checks:
            try:
                if listening():
                    return True
            except Exception:
                return True
        return False

    def emit(self, event: Event) -> None:
        receivers = self._for_requests if event.kind in REQUEST_KINDS else self._callbacks
        for callback in receivers:
            try:
                callback(event)
            except Exception:
                logger.exception("on_event callback failed for %s event", event.kind)
