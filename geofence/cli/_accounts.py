"""``geofence accounts show|clear|list``, and the read-only view of the account store that
``geofence check --account`` decides on.

The commands read the policy's ``[accounts]`` table and talk to its store directly: no
database is opened and no engine is built. A ``memory://`` store lives inside each app
process, so they refuse it (exit 2) rather than show an empty store that is not the app's.
A store that fails (unreachable, timed out) is exit status 1, with its URI (password
redacted) on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

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
from geofence.accounts._uri import open_store
from geofence.cli._common import PROG, StoreFailed, UsageError
from geofence.cli._example import example_policy
from geofence.config._loader import load_policy

if TYPE_CHECKING:
    from geofence._engine import Engine
    from geofence.config._policy import Policy

#: The CLI waits this long for each store call (or ``accounts.timeout`` when longer): a
#: request must not wait, an operator on another network can.
CLI_TIMEOUT = 2.0

NO_ACCOUNTS = (
    "accounts need an [accounts] table in the policy, with the store the app uses, e.g. "
    '[accounts] store = "redis://localhost:6379/0"'
)
MEMORY_STORE = (
    "accounts.store is memory://, which holds account state only inside each app process, "
    "so this command cannot see it; to inspect or clear accounts, share the state through "
    'Redis, e.g. [accounts] store = "redis://localhost:6379/0"'
)

DESCRIPTION = """\
Show, clear or list accounts' state (account grace, strikes, suspension) in the account
store of the policy's [accounts] table: the store the app's processes share.

memory:// holds state only inside each app process, so these commands cannot see it and
exit with status 2 (as without [accounts]). Exit status: 0 when the store answered (an
account it has never seen included), 1 when the store failed (unreachable, timed out: one
line on stderr with its URI, password redacted), 2 for a usage or configuration error.
Each store call waits at most 2 s (or accounts.timeout, when longer)."""

SHOW = """\
Print an account's state: for each rule with account_grace, when the account first matched
it and its own enforce date; its strikes, in total and within the window; its suspension or
flag (since, until, or until cleared); the countries home_mismatch rules saw. An account the
store has never seen is no error (exit 0). --json: one object.

"""
CLEAR = """\
Lift an account's suspension (or flag) and restart its strike window; its strikes so far
stay on record. The app's processes allow the account again within accounts.refresh.
Prints whether there was a suspension to lift; exit 0 either way.

"""
LIST = """\
One line per account the store holds (every primary of a Cluster), sorted by id: its status,
strikes, grace and countries. --suspended: only the accounts blocked now. --json: one JSON
object per line, as `accounts show --json` prints it. Nothing found: no output (a notice on
stderr in text mode), exit 0.

"""


# -- the policy's [accounts], and its store -----------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What the policy says about accounts, for showing a state."""

    store: str  # the store's URI, password redacted
    grace: Mapping[str, tuple[float, float | None]]  # rule -> (account_grace, enforce_from)
    threshold: int | None
    window: float | None
    refresh: float

    @classmethod
    def of(cls, policy: Policy, store: str) -> Context:
        accounts = policy.accounts
        assert accounts is not None
        strikes = policy.strikes
        return cls(
            store=store,
            grace={
                rule.name: (
                    rule.account_grace,
                    rule.enforce_from.timestamp() if rule.enforce_from is not None else None,
                )
                for rule in policy.rules
                if rule.account_grace is not None
            },
            threshold=strikes.threshold if strikes is not None else None,
            window=strikes.window if strikes is not None else None,
            refresh=accounts.refresh,
        )

    def grace_until(self, rule: str, first: float) -> float | None:
        """The account's own enforce date for ``rule`` (None: the rule has no grace now)."""
        if rule not in self.grace:
            return None
        seconds, enforce_from = self.grace[rule]
        return Grace(rule, seconds, enforce_from).until(first)


def limits_of(policy: Policy) -> Limits | None:
    strikes = policy.strikes
    if strikes is None:
        return None
    return Limits(strikes.threshold, strikes.window, strikes.action, strikes.suspend_for)


def _policy(config: str | None) -> Policy:
    policy = load_policy(example_policy() if config is None else config)
    if policy.accounts is None:
        where = "the example policy (no --config)" if config is None else config
        raise UsageError(f"{where} has no [accounts] table: {NO_ACCOUNTS}")
    if policy.accounts.store.lower().startswith("memory:"):
        raise UsageError(MEMORY_STORE)
    return policy


@contextmanager
def _opened(config: str | None) -> Iterator[tuple[Store, Context]]:
    policy = _policy(config)
    accounts = policy.accounts
    assert accounts is not None
    store = open_store(
        accounts.store,
        key_prefix=accounts.key_prefix,
        timeout=max(accounts.timeout, CLI_TIMEOUT),
        limits=limits_of(policy),
    )
    try:
        yield store, Context.of(policy, store.description)
    except StoreError as error:
        raise StoreFailed(failure(store.description, error)) from None
    finally:
        store.close()


def failure(store: str, error: StoreError) -> str:
    """One line that names the store (redacted) and what went wrong."""
    text = " ".join(str(error).split())
    if store not in text:
        text = f"{store}: {text}"
    return f"account store failed: {text}"


# -- how a state is shown ------------------------------------------------------------------------


def when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def duration(seconds: float) -> str:
    """A duration as the config writes it: "24h", "30d", "250ms"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def strikes(count: int) -> str:
    return "1 strike" if count == 1 else f"{count} strikes"


def shown(account: str) -> str:
    """An account id as one word: quoted (JSON) when it holds spaces or control characters."""
    if account and account.isprintable() and not any(ch.isspace() for ch in account):
        return account
    return json.dumps(account)


def status(state: AccountState, now: float) -> str:
    """'suspended', 'flagged' or 'active' at ``now``."""
    if state.suspended(now):
        return "suspended"
    if state.tripped(now):
        return "flagged"
    return "active"


def _until(state: AccountState) -> str:
    until = state.suspended_until
    return "until cleared" if until is None or until == FOREVER else f"until {when(until)}"


def headline(state: AccountState, now: float) -> str:
    kind = status(state, now)
    return kind if kind == "active" else f"{kind} {_until(state)}"


def state_document(
    account: str, state: AccountState, now: float, context: Context
) -> dict[str, Any]:
    """An account's state as JSON (``accounts show --json``, a line of ``list --json``)."""
    suspension = None
    if state.suspension is not None:
        until = state.suspended_until
        suspension = {
            "action": state.suspension,
            "since": _iso(state.suspended_at),
            "until": _iso(until),
            "until_cleared": until is None or until == FOREVER,
            "active": state.tripped(now),
        }
    grace = []
    for rule, first in sorted(state.grace.items()):
        own = context.grace_until(rule, first)
        grace.append(
            {
                "rule": rule,
                "first_seen": _iso(first),
                "enforce_from": _iso(own),
                "in_grace": own is not None and now < own,
            }
        )
    return {
        "account": account,
        "store": context.store,
        "known": state != EMPTY,
        "status": status(state, now),
        "grace": grace,
        "strikes": state.strikes,
        "recent": state.recent,
        "window": context.window,
        "threshold": context.threshold,
        "suspension": suspension,
        "countries": sorted(state.countries),
    }


def _grace_text(rule: str, first: float, now: float, context: Context) -> str:
    own = context.grace_until(rule, first)
    text = f"rule {rule!r}: first seen {when(first)}"
    if own is None:
        return text + " (the rule has no account_grace in this policy)"
    if now < own:
        return text + f"; in account grace until {when(own)}, its own enforce date"
    return text + f"; its account grace ended {when(own)}"


def _strikes_text(state: AccountState, context: Context) -> str:
    if context.threshold is None or context.window is None:
        return f"{state.strikes} in total (the policy has no [strikes]: none are counted)"
    return (
        f"{state.strikes} in total; {state.recent} within the last {duration(context.window)} "
        f"(threshold {context.threshold})"
    )


def _status_text(account: str, state: AccountState, now: float) -> str:
    since = when(state.suspended_at) if state.suspended_at is not None else "?"
    kind = status(state, now)
    if kind == "suspended":
        text = f"suspended since {since}, {_until(state)}"
        if state.suspended_until is None or state.suspended_until == FOREVER:
            text += f" (`{PROG} accounts clear {shown(account)}` lifts it)"
        return text
    if kind == "flagged":
        return f"flagged since {since}, {_until(state)} (flag only: its requests are not blocked)"
    if state.suspension is not None:
        last = "suspended" if state.suspension == "suspend" else "flagged"
        return f"active; last {last} {since}, {_until(state)}"
    return "active"


def state_lines(account: str, state: AccountState, now: float, context: Context) -> list[str]:
    """The body of ``accounts show``: one labelled line per part of the state."""
    lines = [
        f"  grace      {_grace_text(rule, first, now, context)}"
        for rule, first in sorted(state.grace.items())
    ] or ["  grace      none"]
    lines.append(f"  strikes    {_strikes_text(state, context)}")
    lines.append(f"  status     {_status_text(account, state, now)}")
    if state.countries:
        countries = ", ".join(sorted(state.countries))
        lines.append(f"  countries  {countries} (seen by home_mismatch rules, not its home)")
    return lines


def summary(state: AccountState, now: float, context: Context) -> str:
    """One line's worth of state, for ``accounts list``."""
    parts = [headline(state, now)]
    if context.window is not None:
        parts.append(f"{strikes(state.strikes)} ({state.recent} within {duration(context.window)})")
    elif state.strikes:
        parts.append(strikes(state.strikes))
    graces = []
    for rule, first in sorted(state.grace.items()):
        own = context.grace_until(rule, first)
        if own is not None and now < own:
            graces.append(f"{rule} until {when(own)}")
    if graces:
        parts.append("in grace: " + ", ".join(graces))
    if state.countries:
        parts.append("countries: " + ", ".join(sorted(state.countries)))
    return "; ".join(parts)


# -- the commands --------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    account: str = args.id
    with _opened(args.config) as (store, context):
        now = time.time()
        state = store.fetch(account, now)
    if args.json:
        print(json.dumps(state_document(account, state, now, context), indent=2))
        return 0
    if state == EMPTY:
        print(
            f"{shown(account)}: nothing recorded in {context.store} (an account the app has "
            "not seen with [accounts], or whose state expired)"
        )
        return 0
    print(f"{shown(account)}: {headline(state, now)}")
    print(f"  store      {context.store}")
    print("\n".join(state_lines(account, state, now, context)))
    return 0


def _clear(args: argparse.Namespace) -> int:
    account: str = args.id
    with _opened(args.config) as (store, context):
        now = time.time()
        before = store.fetch(account, now)
        lifted = store.clear(account, now)
    if args.json:
        document = state_document(account, before, now, context)
        result = {"account": account, "store": context.store, "lifted": lifted, "before": document}
        print(json.dumps(result, indent=2))
        return 0
    name = shown(account)
    if not lifted:
        if before == EMPTY:
            print(f"{name}: nothing recorded in {context.store}; no suspension to lift")
        else:
            print(f"{name}: not suspended or flagged; nothing to lift")
        return 0
    what = "flag" if before.suspension == "flag" else "suspension"
    since = when(before.suspended_at) if before.suspended_at is not None else "?"
    print(f"{name}: {what} lifted (since {since}, {_until(before)})")
    print(
        f"  the app's processes see it within accounts.refresh ({duration(context.refresh)}); "
        f"its {before.strikes} past strikes stay on record, and its strike window starts afresh"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with _opened(args.config) as (store, context):
        now = time.time()
        found = [
            (account, state)
            for account, state in store.accounts(now)
            if not args.suspended or state.suspended(now)
        ]
    if args.json:
        for account, state in found:
            print(json.dumps(state_document(account, state, now, context)))
        return 0
    if not found:
        what = "suspended accounts" if args.suspended else "accounts"
        notice(f"no {what} in {context.store}")
        return 0
    names = [shown(account) for account, _ in found]
    width = max(len(name) for name in names)
    for name, (_, state) in zip(names, found, strict=True):
        print(f"{name:<{width}}  {summary(state, now, context)}")
    return 0


def notice(text: str) -> None:
    """A line for the person at the terminal, on stderr (stdout stays the data)."""
    with suppress(BrokenPipeError):  # nobody reads stderr: the exit status tells
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence accounts show|clear|list`` under the top-level ``commands``."""
    common = parser_class(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help=".toml or .json policy with an [accounts] table: the app's own",
    )
    common.add_argument("--json", action="store_true", help="print JSON")
    raw = argparse.RawDescriptionHelpFormatter
    accounts = commands.add_parser(
        "accounts",
        help="show, clear or list accounts' state in the shared account store",
        description=DESCRIPTION,
        formatter_class=raw,
    )
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        parents=[common],
        help="an account's grace dates, strikes, suspension and countries",
        description=SHOW + DESCRIPTION,
        formatter_class=raw,
    )
    show.add_argument("id", metavar="ID", help="the account's id, as the app passes it")
    show.set_defaults(func=_show)
    clear = actions.add_parser(
        "clear",
        parents=[common],
        help="lift an account's suspension (or flag)",
        description=CLEAR + DESCRIPTION,
        formatter_class=raw,
    )
    clear.add_argument("id", metavar="ID", help="the account's id, as the app passes it")
    clear.set_defaults(func=_clear)
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="one line per account in the store (every Cluster primary)",
        description=LIST + DESCRIPTION,
        formatter_class=raw,
    )
    listing.add_argument(
        "--suspended", action="store_true", help="only accounts suspended now (blocked)"
    )
    listing.set_defaults(func=_list)


# -- check --account: decide against a read-only snapshot -----------------------------------------


class ReadOnlyStore:
    """The store ``geofence check --account`` gives its engine: it reads an account's state
    from the real store once, and applies each request to a private copy of that snapshot.

    So check shows what the app would decide for the next request of that account, and what
    the request would record there (``outcome``), without changing the shared state: a check
    never starts an account's grace, counts a strike or suspends anyone. Each ``record``
    starts again from the snapshot, so deciding twice (decide, then explain) counts once.
    """

    def __init__(self, inner: Store, limits: Limits | None) -> None:
        self.description = inner.description
        self.inner = inner
        self._limits = limits
        self._snapshots: dict[str, AccountState] = {}
        self.error: str | None = None  # the store's failure, once: then no more waiting
        self.outcome: Outcome | None = None  # what the last request would record

    def snapshot(self, account: str, now: float) -> AccountState:
        if self.error is not None:
            raise StoreError(self.error)
        state = self._snapshots.get(account)
        if state is None:
            try:
                state = self.inner.fetch(account, now)
            except StoreError as error:
                self.error = " ".join(str(error).split())
                raise
            self._snapshots[account] = state
        return state

    def fetched(self, account: str) -> AccountState | None:
        """The snapshot read for ``account``, if any was."""
        return self._snapshots.get(account)

    def ping(self) -> None:
        self.inner.ping()

    def fetch(self, account: str, now: float) -> AccountState:
        return self.snapshot(account, now)

    def record(self, account: str, hit: Hit) -> Outcome:
        local = MemoryStore(self._limits)
        local.seed(account, self.snapshot(account, hit.at), hit.at)
        self.outcome = local.record(account, hit)
        return self.outcome

    def clear(self, account: str, now: float) -> bool:
        state = self.snapshot(account, now)
        self._snapshots[account] = replace(
            state, suspension=None, suspended_at=None, suspended_until=None, recent=0
        )
        return state.tripped(now)

    def accounts(self, now: float) -> Iterator[tuple[str, AccountState]]:
        return self.inner.accounts(now)

    async def afetch(self, account: str, now: float) -> AccountState:
        return self.fetch(account, now)

    async def arecord(self, account: str, hit: Hit) -> Outcome:
        return self.record(account, hit)

    def close(self) -> None:
        self.inner.close()


def read_only(engine: Engine) -> ReadOnlyStore | None:
    """Give ``engine`` a :class:`ReadOnlyStore` over its own store; None without
    ``[accounts]``. Call before the engine decides anything for an account."""
    ledger = engine._ledger  # the one place a tool swaps an engine's store
    if ledger is None:
        return None
    view = ReadOnlyStore(ledger.store, ledger.limits)
    ledger.store = view
    return view


@dataclass(frozen=True)
class CheckedAccount:
    """What ``check --account`` adds to its output."""

    lines: list[str]  # after the region
    effect: list[str]  # after the reason
    document: dict[str, Any]  # keys added to --json


def checked_account(
    policy: Policy,
    view: ReadOnlyStore | None,
    account: str,
    home: str | None,
    at: float,
) -> CheckedAccount:
    name = shown(account) + (f" (home country {home})" if home else "")
    document: dict[str, Any] = {
        "home_country": home,
        "account_state": None,
        "store": None,
        "store_error": None,
        "would_record": None,
    }
    if view is None or policy.accounts is None:
        note = "the policy has no [accounts] table, so the account changes no decision"
        return CheckedAccount([f"  account    {name}: {note}"], [], document)
    context = Context.of(policy, view.description)
    document["store"] = view.description
    lines = [f"  account    {name}"]
    memory = isinstance(view.inner, MemoryStore)
    state = view.fetched(account)
    if state is None and view.error is None and not memory:
        # The decision did not need the store (an exemption): show the state all the same.
        with suppress(StoreError):
            state = view.snapshot(account, at)
    if memory:
        lines.append(
            "  store      memory://: this fresh process has no history for the account "
            "(each app process keeps its own); decided as its first request"
        )
    elif view.error is not None:
        on_error = policy.accounts.on_store_error
        document["store_error"] = view.error
        lines.append(
            f"  store      failed ({view.error}); where the decision needed the account's "
            f'state, on_store_error = "{on_error}" applied, as in the app'
        )
    else:
        lines.append(f"  store      {view.description} (read only: check changes no account)")
    if state is not None and not memory:
        document["account_state"] = state_document(account, state, at, context)
        lines.append(f"  state      {summary(state, at, context)}")
    effect: list[str] = []
    outcome = view.outcome
    if outcome is not None:
        document["would_record"] = {
            "grace_started": outcome.grace_started,
            "strike": outcome.struck,
            "suspends": outcome.tripped,
            "new_country": outcome.new_country,
        }
        effect = _effect_lines(outcome, context, at)
    return CheckedAccount(lines, effect, document)


def _effect_lines(outcome: Outcome, context: Context, at: float) -> list[str]:
    """What the request would record in the app (never here)."""
    after = outcome.state
    would = []
    if outcome.grace_started and outcome.grace_until is not None:
        own = when(outcome.grace_until)
        would.append(f"start the account's grace (its own enforce date {own})")
    if outcome.struck:
        strike = f"count strike {after.strikes}"
        counting = not outcome.tripped and not after.tripped(at)
        if context.threshold is not None and context.window is not None and counting:
            strike += f" ({after.recent} of {context.threshold} within {duration(context.window)})"
        would.append(strike)
    if outcome.tripped:
        action = "suspend" if after.suspension == "suspend" else "flag"
        would.append(f"{action} the account ({_until(after)})")
    if outcome.new_country:
        would.append("remember a new home-mismatch country")
    if not would:
        return []
    return [f"  in the app this request would {'; '.join(would)}"]
