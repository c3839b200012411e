"""What an account store holds and the operations every store offers (memory, Redis).

A store knows nothing of requests: the engine works out what a request means for an account
(a grace period to start, a strike, a country to remember) and hands the store one
:class:`Hit`; the store applies it atomically, decides the transitions (a grace period that
starts now, a suspension that starts now) and returns the new :class:`AccountState`. Doing
the transition inside the store is what makes its event fire once across every process that
shares the store.

Times are Unix seconds (floats) from the engine's clock, never the store's: a replay decides
last month's log on a memory store with the log's own times. Nothing here is a client IP
address, and no store may keep one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FOREVER = math.inf  # suspended_until of a suspension that lasts until an operator clears it

Suspension = Literal["suspend", "flag"]


class StoreError(Exception):
    """A store call failed: unreachable, timed out, refused, or answered nonsense."""


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account's state, as a store last saw it."""

    # rule name -> when the account first matched that rule (its account grace started)
    grace: Mapping[str, float] = field(default_factory=dict)
    strikes: int = 0  # every strike ever counted (until cleared)
    recent: int = 0  # strikes inside the window that counts towards a suspension
    # The last time strikes reached the threshold: "suspend" blocks until suspended_until,
    # "flag" only reported it. FOREVER until cleared.
    suspension: Suspension | None = None
    suspended_at: float | None = None
    suspended_until: float | None = None
    countries: frozenset[str] = frozenset()  # request countries that differed from home

    def suspended(self, now: float) -> bool:
        """Whether every request of this account is blocked at ``now``."""
        return (
            self.suspension == "suspend"
            and self.suspended_until is not None
            and now < self.suspended_until
        )

    def tripped(self, now: float) -> bool:
        """Whether a suspension or flag is running at ``now`` (strikes then start no new one)."""
        return self.suspended_until is not None and now < self.suspended_until


EMPTY = AccountState()


@dataclass(frozen=True, slots=True)
class Grace:
    """A rule with ``account_grace`` matched: the account's own enforce date is
    ``max(enforce_from, first match + seconds)``."""

    rule: str
    seconds: float
    enforce_from: float | None  # Unix seconds, None for a rule without one

    def until(self, first: float) -> float:
        own = first + self.seconds
        return own if self.enforce_from is None else max(self.enforce_from, own)


@dataclass(frozen=True, slots=True)
class Hit:
    """What one request records for an account, applied atomically by :meth:`Store.record`."""

    at: float  # Unix seconds: the decision's time
    grace: Grace | None = None  # start (or read) this rule's account grace
    # Which strike to count depends on what the store knows, so the caller says what to do
    # in each case and the store picks, in the same round trip:
    strike: bool = False  # count a strike when the account is neither suspended nor in grace
    strike_in_grace: bool = False  # ... when it is in grace for hit.grace (a warn)
    strike_if_suspended: bool = False  # ... when it is suspended at ``at`` (a block)
    country: str | None = None  # a home-mismatch country to remember


@dataclass(frozen=True, slots=True)
class Limits:
    """``[strikes]`` as a store applies it (window and suspend_for in seconds)."""

    threshold: int
    window: float
    action: Suspension
    suspend_for: float  # 0 = until cleared


@dataclass(frozen=True, slots=True)
class Outcome:
    """The account after a :class:`Hit`, and the transitions this very call made."""

    state: AccountState
    grace_until: float | None = None  # the account's own enforce date for hit.grace
    grace_started: bool = False  # this call recorded the first match (emit once)
    struck: bool = False  # a strike was counted
    tripped: bool = False  # this call started a suspension or flag (emit once)
    new_country: bool = False  # hit.country was not yet remembered (emit once)

    def in_grace(self, now: float) -> bool:
        return self.grace_until is not None and now < self.grace_until


@runtime_checkable
class Store(Protocol):
    """Every store: sync calls for WSGI apps and tools, async ones for ASGI apps.

    Each operation is one atomic step on the store's side (one round trip for a server), is
    bounded by the store's timeout, is never retried, and raises :class:`StoreError` on any
    failure. ``Limits`` are given at construction (None: strikes are never counted).
    """

    description: str  # for logs and the CLI, without credentials

    def ping(self) -> None: ...
    def fetch(self, account: str, now: float) -> AccountState: ...
    def record(self, account: str, hit: Hit) -> Outcome: ...
    def clear(self, account: str, now: float) -> bool: ...  # True when a suspension was lifted
    def accounts(self, now: float) -> Iterator[tuple[str, AccountState]]: ...
    async def afetch(self, account: str, now: float) -> AccountState: ...
    async def arecord(self, account: str, hit: Hit) -> Outcome: ...
    def close(self) -> None: ...


def next_suspension(limits: Limits, at: float) -> float:
    """When a suspension (or flag) that starts at ``at`` ends."""
    return FOREVER if limits.suspend_for <= 0 else at + limits.suspend_for
