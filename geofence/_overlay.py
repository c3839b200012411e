"""What the testing kit (:mod:`geofence.testing`) makes every engine believe about clients.

The engine reads :data:`ACTIVE` only when it decides a client anew (a cache miss), never on a
cache hit, so an app pays nothing for this outside its tests. Every engine registers here when
it is built, so that a kit activated before or after can reach it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geofence.clientip._addresses import IP
    from geofence.geoip._records import GeoRecord

    Found = tuple[GeoRecord, frozenset[str], int | None]

#: The active kit's lookup: ``lookup(ip)`` gives what the databases would say about ``ip``
#: (None for an unresolved client), or None to ask the real ones.
ACTIVE: Callable[[IP | None], Found | None] | None = None
#: Every engine alive, and what to do with one built while a kit is active.
ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()
ADOPT: Callable[[Any], None] | None = None


def register(engine: Any) -> None:
    ENGINES.add(engine)
    if ADOPT is not None:
        ADOPT(engine)
