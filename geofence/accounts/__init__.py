"""Per-account state (account grace, strikes, suspension, home-mismatch countries) and the
stores that hold it: ``memory://`` for one process, Redis shared by every process and host.

The engine (``geofence._engine``) asks :mod:`geofence.accounts._ledger` what a decision
means for an account; the ledger keeps this process's copies, the circuit breaker and the
fallback, and calls a :class:`Store` at most once per request.

The names below are loaded on first use (see :mod:`geofence._lazy`): an engine without
``[accounts]`` needs none of the stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence._lazy import exports

if TYPE_CHECKING:
    from geofence.accounts._account import Account
    from geofence.accounts._memory import MemoryStore
    from geofence.accounts._store import (
        EMPTY,
        FOREVER,
        AccountState,
        Grace,
        Hit,
        Limits,
        Outcome,
        Store,
        StoreError,
    )
    from geofence.accounts._uri import check_store_uri, open_store, redact

_WHERE = {
    "Account": "_account",
    "MemoryStore": "_memory",
    "check_store_uri": "_uri",
    "open_store": "_uri",
    "redact": "_uri",
    "EMPTY": "_store",
    "FOREVER": "_store",
    "AccountState": "_store",
    "Grace": "_store",
    "Hit": "_store",
    "Limits": "_store",
    "Outcome": "_store",
    "Store": "_store",
    "StoreError": "_store",
}

__all__ = [
    "EMPTY",
    "FOREVER",
    "Account",
    "AccountState",
    "Grace",
    "Hit",
    "Limits",
    "MemoryStore",
    "Outcome",
    "Store",
    "StoreError",
    "check_store_uri",
    "open_store",
    "redact",
]

__getattr__, __dir__ = exports(__name__, globals(), _WHERE)
