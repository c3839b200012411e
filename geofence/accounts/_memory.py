"""``memory://``: account state in this process only (the default, tests, replays)."""

from __future__ import annotations

import threading
from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from geofence.accounts._store import (
    EMPTY,
    AccountState,
    Hit,
    Limits,
    Outcome,
    next_suspension,
)


@dataclass
class _Entry:
    state: AccountState = EMPTY
    # Times of the strikes in the current window, sorted: a replay or another thread may
    # record a little out of order.
    window: list[float] = field(default_factory=list)


class MemoryStore:
    """The reference implementation of :class:`~geofence.accounts.Store`: every other store
    must give the same answers (tests/accounts runs one contract suite against all)."""

    description = "memory://"

    def __init__(self, limits: Limits | None) -> None:
        self._limits = limits
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def ping(self) -> None:
        return None

    def fetch(self, account: str, now: float) -> AccountState:
        with self._lock:
            entry = self._entries.get(account)
            if entry is None:
                return EMPTY
            return replace(entry.state, recent=self._recent(entry, now))

    def record(self, account: str, hit: Hit) -> Outcome:
        with self._lock:
            entry = self._entries.setdefault(account, _Entry())
            state = entry.state
            at = hit.at
            grace_until = None
            started = False
            if hit.grace is not None:
                first = state.grace.get(hit.grace.rule)
                if first is None:
                    first, started = at, True
                    state = replace(state, grace={**state.grace, hit.grace.rule: at})
                grace_until = hit.grace.until(first)
            in_grace = grace_until is not None and at < grace_until
            if state.suspended(at):
                struck = hit.strike_if_suspended
            elif in_grace:
                struck = hit.strike_in_grace
            else:
                struck = hit.strike
            tripped = False
            limits = self._limits
            if struck and limits is not None:
                state = replace(state, strikes=state.strikes + 1)
                if not state.tripped(at):
                    insort(entry.window, at)
                    if self._recent(entry, at) >= limits.threshold:
                        tripped = True
                        entry.window.clear()
                        state = replace(
                            state,
                            suspension=limits.action,
                            suspended_at=at,
                            suspended_until=next_suspension(limits, at),
                        )
            elif struck:
                struck = False  # no [strikes]: nothing counts
            new_country = hit.country is not None and hit.country not in state.countries
            if new_country:
                assert hit.country is not None
                state = replace(state, countries=state.countries | {hit.country})
            entry.state = state
            state = replace(state, recent=self._recent(entry, at))
        return Outcome(state, grace_until, started, struck, tripped, new_country)

    def seed(self, account: str, state: AccountState, at: float) -> None:
        """Start ``account`` from ``state``, another store's view of it at ``at``: for tools
        that decide on a private copy (``geofence check --account``). A state holds the
        number of recent strikes, not their times: they are placed at ``at``, which counts
        the same for a decision at ``at``."""
        with self._lock:
            self._entries[account] = _Entry(state, [at] * state.recent)

    def clear(self, account: str, now: float) -> bool:
        with self._lock:
            entry = self._entries.get(account)
            if entry is None:
                return False
            lifted = entry.state.tripped(now)
            entry.window.clear()
            entry.state = replace(
                entry.state, suspension=None, suspended_at=None, suspended_until=None
            )
            return lifted

    def accounts(self, now: float) -> Iterator[tuple[str, AccountState]]:
        with self._lock:
            items = [
                (name, replace(e.state, recent=self._recent(e, now)))
                for name, e in self._entries.items()
            ]
        return iter(sorted(items))

    async def afetch(self, account: str, now: float) -> AccountState:
        return self.fetch(account, now)

    async def arecord(self, account: str, hit: Hit) -> Outcome:
        return self.record(account, hit)

    def close(self) -> None:
        return None

    def _recent(self, entry: _Entry, now: float) -> int:
        """Strikes inside the window that ends at ``now``, dropping older ones."""
        window = entry.window
        if self._limits is None:
            return 0
        horizon = now - self._limits.window
        stale = 0
        while stale < len(window) and window[stale] <= horizon:
            stale += 1
        del window[:stale]
        # Strikes stamped a little after ``now`` count too: every process (and thread) stamps
        # with its own clock, and a strike is never lost to a skew of microseconds.
        return len(window)
