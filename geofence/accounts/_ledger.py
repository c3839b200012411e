"""What an account makes of a decision: exemption, suspension, account grace, strikes and
home-mismatch countries, with this process's copies of account state, the circuit breaker and
the fallback for a store that is down.

The engine first decides the request by its client (cached, as without an account), then
asks :meth:`Ledger.settle` (or :meth:`Ledger.asettle` in async apps). The work is split in
:meth:`_plan` (what the request needs from the store, if anything) and :meth:`_finish` (the
decision given the store's answer), so the sync and async drivers share every rule and differ
only in how they call the store: at most once per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Literal

from geofence._events import Emitter, Event
from geofence._model import Decision
from geofence.accounts._account import Account
from geofence.accounts._breaker import Breaker
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
from geofence.config._policy import Policy
from geofence.http._answer import Answer
from geofence.rules._rule import Rule

logger = logging.getLogger("geofence")

# Decided before accounts are looked at: an exempt IP or path is never an account's business.
_BEFORE_ACCOUNTS = frozenset({"exempt_ip", "exempt_path", "off"})
# Blocks that are the service's fault, not the account's: never a strike.
_NOT_STRIKES = frozenset({"db_error", "store_error"})


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class _Copy:
    """This process's copy of one account's state, and the last answer it gave from it."""

    __slots__ = ("fetched", "memo", "memo_base", "memo_groups", "memo_until", "state")

    def __init__(self, state: AccountState, fetched: float) -> None:
        self.state = state
        self.fetched = fetched  # the decision time it was read at (Unix seconds)
        # The last request's (client decision -> account decision) while nothing can change
        # it: a repeated allowed request is one dictionary lookup and a few comparisons.
        self.memo_base: Decision | None = None
        self.memo: Answer | None = None  # what the engine made of it
        self.memo_groups: tuple[str, ...] | frozenset[str] = ()
        self.memo_until = 0.0


class _Pending:
    """A request that needs the store: the hit to record and what to finish with."""

    __slots__ = ("account", "base", "copy", "hit")

    def __init__(self, base: Decision, account: Account, hit: Hit, copy: _Copy | None) -> None:
        self.base = base
        self.account = account
        self.hit = hit
        self.copy = copy


class Ledger:
    """Built by the engine when the policy has ``[accounts]``."""

    def __init__(
        self,
        policy: Policy,
        rules: Sequence[Rule],
        emitter: Emitter,
        clock: Callable[[], float],
        store: Store | None = None,
    ) -> None:
        accounts = policy.accounts
        assert accounts is not None
        strikes = policy.strikes
        self.limits = (
            None
            if strikes is None
            else Limits(strikes.threshold, strikes.window, strikes.action, strikes.suspend_for)
        )
        # Imported here: an engine without [accounts] never builds a ledger, nor needs a store.
        from geofence.accounts._memory import MemoryStore
        from geofence.accounts._uri import open_store

        self.store: Store = store or open_store(
            accounts.store,
            key_prefix=accounts.key_prefix,
            timeout=accounts.timeout,
            limits=self.limits,
        )
        try:
            self.store.ping()
        except StoreError as error:
            # The app may start before its Redis does: not fatal. Requests that need the
            # store meanwhile get what on_store_error says.
            logger.warning(
                "account store %s is unreachable at startup (%s); on_store_error=%s applies "
                "until it answers",
                self.store.description,
                error,
                accounts.on_store_error,
            )
        self._refresh = accounts.refresh
        self._on_error: Literal["local", "allow", "block"] = accounts.on_store_error
        self._fallback = MemoryStore(self.limits)  # "local": this process's own state
        self._breaker = Breaker(clock)
        self._emitter = emitter
        self._report = policy.mode == "report"
        self._count_block = strikes is not None and "block" in strikes.count
        self._count_warn = strikes is not None and "warn" in strikes.count
        self._suspended_status = strikes.status if strikes is not None else 403
        self._exempt_ids = frozenset(a for a in policy.exempt_accounts if not a.startswith("@"))
        self._exempt_groups = frozenset(a[1:] for a in policy.exempt_accounts if a.startswith("@"))
        self._grace = {
            r.name: (r.account_grace, r.enforces / 1e6 if r.enforces is not None else None)
            for r in rules
            if r.account_grace is not None
        }
        self._mismatch_rules = frozenset(r.name for r in rules if r.home_mismatch)
        self._copies: dict[str, _Copy] = {}
        self._copies_limit = 65_536

    # -- the drivers -------------------------------------------------------------------------

    def memo(self, base: Decision, account: Account, at: float) -> Answer | None:
        """What the engine remembered for this account and client decision, while still
        valid (see :meth:`remember`); None otherwise. The hot path of a repeated request."""
        copy = self._copies.get(account.id)
        if (
            copy is not None
            and copy.memo_base is base
            and copy.fetched <= at < copy.memo_until
            and copy.memo_groups == account.groups
        ):
            return copy.memo
        return None

    def remember(self, base: Decision, account: Account, at: float, answer: Answer) -> None:
        """Keep the engine's answer for (account, base) until anything could change it."""
        copy = self._copies.get(account.id)
        if copy is None:
            return
        until = self._memo_until(copy, at)
        if until > at:
            copy.memo_base, copy.memo, copy.memo_groups = base, answer, account.groups
            copy.memo_until = until

    def settle(self, base: Decision, account: Account, at: float) -> Decision:
        pending = self._plan(base, account, at)
        if isinstance(pending, Decision):
            return pending
        if not self._breaker.allows():
            return self._failed(pending, at, "circuit open", called=False)
        try:
            outcome = self.store.record(account.id, pending.hit)
        except StoreError as error:
            return self._failed(pending, at, str(error), called=True)
        except BaseException:
            # Interrupted (a worker's deadline, a gevent timeout): neither success nor failure.
            self._breaker.abandoned()
            raise
        self._breaker.succeeded()
        return self._finish(pending, outcome, at)

    async def asettle(self, base: Decision, account: Account, at: float) -> Decision:
        pending = self._plan(base, account, at)
        if isinstance(pending, Decision):
            return pending
        if not self._breaker.allows():
            return self._failed(pending, at, "circuit open", called=False)
        try:
            outcome = await self.store.arecord(account.id, pending.hit)
        except StoreError as error:
            return self._failed(pending, at, str(error), called=True)
        except BaseException:
            # Cancelled (the client went away, a wait_for): neither success nor failure.
            self._breaker.abandoned()
            raise
        self._breaker.succeeded()
        return self._finish(pending, outcome, at)

    # -- the rules ---------------------------------------------------------------------------

    def _plan(self, base: Decision, account: Account, at: float) -> Decision | _Pending:
        """The decision, when this process can tell without the store; else what to record."""
        if base.reason in _BEFORE_ACCOUNTS:
            return base._replace(account=account.id)
        if account.id in self._exempt_ids or (
            self._exempt_groups and not self._exempt_groups.isdisjoint(account.groups)
        ):
            return self._exempt(base, account)
        hit = self._hit(base, at)
        copy = self._copies.get(account.id)
        if copy is None or not copy.fetched <= at < copy.fetched + self._refresh:
            return _Pending(base, account, hit, copy)
        state = copy.state
        grace_until = None
        if hit.grace is not None:
            first = state.grace.get(hit.grace.rule)
            if first is None:
                return _Pending(base, account, hit, copy)  # its grace starts: the store decides
            grace_until = hit.grace.until(first)
        in_grace = grace_until is not None and at < grace_until
        if state.suspended(at):
            strike = hit.strike_if_suspended
        else:
            strike = hit.strike_in_grace if in_grace else hit.strike
        if strike or (hit.country is not None and hit.country not in state.countries):
            return _Pending(base, account, hit, copy)
        return self._decision(base, account, state, grace_until, at)

    def _hit(self, base: Decision, at: float) -> Hit:
        enforced = base.enforced
        grace = None
        rule = base.rule
        if enforced and rule is not None and base.action != "allow" and rule in self._grace:
            seconds, enforce_from = self._grace[rule]
            assert seconds is not None
            grace = Grace(rule, seconds, enforce_from)
        action = base.action
        strike = enforced and (
            (action == "block" and self._count_block and base.reason not in _NOT_STRIKES)
            or (action == "warn" and self._count_warn)
        )
        country = None
        if enforced and rule in self._mismatch_rules and base.country is not None:
            country = base.country
        return Hit(
            at=at,
            grace=grace,
            strike=strike,
            strike_in_grace=enforced and self._count_warn,
            strike_if_suspended=self._count_block and not self._report,
            country=country,
        )

    def _finish(self, pending: _Pending, outcome: Outcome, at: float) -> Decision:
        account, base = pending.account, pending.base
        state = outcome.state
        copy = pending.copy
        if copy is None:
            if len(self._copies) >= self._copies_limit:
                self._copies.clear()  # rare; a copy is only a cache of the store
            self._copies[account.id] = _Copy(state, at)
        else:
            copy.state, copy.fetched, copy.memo_base = state, at, None
        decision = self._decision(base, account, state, outcome.grace_until, at)
        if self._emitter.active:
            self._emit_outcome(decision, account, pending.hit, outcome, at)
        return decision

    def _failed(self, pending: _Pending, at: float, error: str, *, called: bool) -> Decision:
        """The store did not answer: ``on_store_error`` decides, a known suspension stands."""
        if called and self._breaker.failed():
            logger.warning(
                "account store %s unreachable (%s): skipping it for a while; "
                "on_store_error=%s applies meanwhile",
                self.store.description,
                error,
                self._on_error,
            )
            self._emitter.emit(
                Event(
                    "store_error",
                    _utc(at),
                    pending.base,
                    pending.account.id,
                    None,
                    {"error": error, "store": self.store.description},
                )
            )
        base, account = pending.base, pending.account
        known = pending.copy.state if pending.copy is not None else EMPTY
        if known.suspended(at):
            return self._suspended(base, account)
        if self._on_error == "local":
            # This process's own view; its transitions are not events: the shared store
            # makes those once it is back, and an email must not go out twice.
            local = self._fallback.record(account.id, pending.hit)
            grace_until = local.grace_until
            grace = pending.hit.grace
            if grace is not None and grace.rule in known.grace:
                grace_until = grace.until(known.grace[grace.rule])
            return self._decision(base, account, local.state, grace_until, at)
        if self._on_error == "block" and not (base.action == "block" and pending.hit.grace is None):
            return base._replace(
                action="block",
                enforced=not self._report,
                reason="store_error",
                rule=None,
                status=503,
                warn_from=None,
                enforce_from=None,
                phase="",
                account=account.id,
            )
        # "allow" (and a block by the client's rules alone, which a store failure never
        # changes): the account counts as having no grace, strikes or suspension.
        return base._replace(account=account.id)

    def _decision(
        self,
        base: Decision,
        account: Account,
        state: AccountState,
        grace_until: float | None,
        at: float,
    ) -> Decision:
        if state.suspended(at):
            return self._suspended(base, account)
        if grace_until is not None and at < grace_until:
            until = _utc(grace_until)
            return base._replace(
                action="warn",
                reason="account_grace",
                status=None,
                enforce_from=until,
                phase=f"account grace until {until.isoformat()}",
                account=account.id,
            )
        return base._replace(account=account.id)

    def _suspended(self, base: Decision, account: Account) -> Decision:
        return base._replace(
            action="block",
            enforced=not self._report,
            reason="account_suspended",
            rule=None,
            status=self._suspended_status,
            warn_from=None,
            enforce_from=None,
            phase="",
            account=account.id,
        )

    def _exempt(self, base: Decision, account: Account) -> Decision:
        return base._replace(
            action="allow",
            enforced=True,
            reason="exempt_account",
            rule=None,
            status=None,
            warn_from=None,
            enforce_from=None,
            phase="",
            report_rules=(),
            account=account.id,
        )

    def _memo_until(self, copy: _Copy, at: float) -> float:
        """Until when a decision made from ``copy`` at ``at`` stays what it is."""
        until = copy.fetched + self._refresh
        state = copy.state
        if state.suspended_until is not None and at < state.suspended_until:
            until = min(until, state.suspended_until)
        for rule, first in state.grace.items():
            seconds, enforce_from = self._grace.get(rule, (None, None))
            if seconds is not None:
                end = Grace(rule, seconds, enforce_from).until(first)
                if at < end:
                    until = min(until, end)
        return until

    def _emit_outcome(
        self, decision: Decision, account: Account, hit: Hit, outcome: Outcome, at: float
    ) -> None:
        when = _utc(at)
        state = outcome.state
        emit = self._emitter.emit
        if outcome.grace_started and hit.grace is not None and outcome.grace_until is not None:
            emit(
                Event(
                    "account_grace_started",
                    when,
                    decision,
                    account.id,
                    hit.grace.rule,
                    {"until": _utc(outcome.grace_until), "first_seen": when},
                )
            )
        if outcome.struck:
            emit(
                Event(
                    "account_strike",
                    when,
                    decision,
                    account.id,
                    decision.rule,
                    {"strikes": state.strikes, "recent": state.recent},
                )
            )
        if outcome.tripped:
            until = state.suspended_until
            emit(
                Event(
                    "account_suspended",
                    when,
                    decision,
                    account.id,
                    None,
                    {
                        "action": state.suspension,
                        "until": None if until is None or until == FOREVER else _utc(until),
                        "strikes": state.strikes,
                    },
                )
            )
        if outcome.new_country and hit.country is not None:
            emit(
                Event(
                    "account_home_mismatch",
                    when,
                    decision,
                    account.id,
                    decision.rule,
                    {"country": hit.country, "home": account.home_country},
                )
            )

    def close(self) -> None:
        self.store.close()
