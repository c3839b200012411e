"""A circuit breaker: after repeated store failures, skip the store for a while.

A store that is down costs every request up to ``timeout``; after ``failures`` consecutive
failures the breaker opens and requests skip the store at once (no connection attempt) for
``cooldown`` seconds. Then one request is let through to probe it (half-open): success
closes the breaker, failure opens it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

FAILURES = 3  # consecutive failures that open the breaker
COOLDOWN = 5.0  # seconds the store is skipped before it is probed again


class Breaker:
    __slots__ = ("_clock", "_cooldown", "_failures", "_limit", "_lock", "_open_until", "_probing")

    def __init__(
        self, clock: Callable[[], float], failures: int = FAILURES, cooldown: float = COOLDOWN
    ) -> None:
        self._clock = clock
        self._limit = failures
        self._cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0  # monotonic; 0: closed
        self._probing = False
        self._lock = threading.Lock()

    def allows(self) -> bool:
        """Whether this call may go to the store (closed, or the one probe when half-open)."""
        if not self._open_until:
            return True
        with self._lock:
            if self._probing or self._clock() < self._open_until:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        if self._failures or self._open_until:
            with self._lock:
                self._failures = 0
                self._open_until = 0.0
                self._probing = False

    def abandoned(self) -> None:
        """A call ended without an answer either way (an async request cancelled while it
        waited): a probe it was must not keep the breaker half-open for ever."""
        if self._probing:
            with self._lock:
                self._probing = False

    def failed(self) -> bool:
        """Count a failure; True when this one opened the breaker (report it once)."""
        with self._lock:
            self._failures += 1
            was_open = bool(self._open_until)
            if self._failures >= self._limit or was_open:
                self._open_until = self._clock() + self._cooldown
                self._probing = False
                return not was_open
            return False

    @property
    def is_open(self) -> bool:
        return bool(self._open_until)
