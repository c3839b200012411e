"""Per-account state (account grace, strikes, suspension, home-mismatch countries) and the
stores that hold it: ``memory://`` for one process, Redis shared by every process and host.

The engine (``geofence._engine``) asks :mod:`geofence.accounts._ledger` what a decision
means for an account; the ledger keeps this process's copies, the circuit breaker and the
fallback, and calls a :class:`Store` at most once per request.
"""

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
