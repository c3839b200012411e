"""``geofence.Event`` and the one guarded way the engine hands events to the app.

Events come from the engine, so they are the same whichever adapter (or none) asked. The
app's callback runs on the request's thread; whatever it raises is logged on the
``geofence`` logger and never reaches the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from geofence._model import Decision

logger = logging.getLogger("geofence")

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


@dataclass(frozen=True, slots=True)
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
    """

    __slots__ = ("_callbacks", "_for_requests")

    def __init__(self, callback: EventCallback | None = None) -> None:
        self._callbacks: tuple[EventCallback, ...] = () if callback is None else (callback,)
        self._for_requests = self._callbacks

    def add(self, callback: EventCallback, *, requests: bool = True) -> None:
        """Another receiver (an adapter's signal), called after the ones already there;
        ``requests=False``: not for block, warn, would_block and would_warn."""
        self._callbacks = (*self._callbacks, callback)
        if requests:
            self._for_requests = (*self._for_requests, callback)

    @property
    def active(self) -> bool:
        return bool(self._callbacks)

    @property
    def wants_requests(self) -> bool:
        """Whether some receiver takes the request kinds (else the engine builds none)."""
        return bool(self._for_requests)

    def emit(self, event: Event) -> None:
        receivers = self._for_requests if event.kind in REQUEST_KINDS else self._callbacks
        for callback in receivers:
            try:
                callback(event)
            except Exception:
                logger.exception("on_event callback failed for %s event", event.kind)
