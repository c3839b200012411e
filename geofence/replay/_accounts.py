"""Accounts in a replay: the account rules (account grace, strikes, home country) run on a
fresh memory store with the log's clock, and the list of accounts to tell before the date.

Every record with an account is decided by ``engine.decide(request, now=line's time or at,
account=Account(id))`` on an engine of its own, whose store is always ``memory://``: the
policy's ``[accounts] store`` is replaced before the policy is loaded, so a replay never
connects to (or counts strikes in) the production Redis. The store's times are the ``now``
given (the ledger stamps grace starts, strikes and suspensions with the decision's time), so
the state moves with the log, not with the wall clock. These decisions bypass the memo: an
account's state changes with each of its requests.

The log gives an account's id only, never its home country, so ``home_regions`` and
``home_mismatch`` never match in a replay (a note in the report says so).

A policy without ``[accounts]`` has no account rules: accounts are then grouped from the
plain decisions (warned and blocked only), and a note says so.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from geofence._engine import Engine
from geofence._errors import ConfigError
from geofence._model import Decision, RequestInfo
from geofence.accounts._account import Account
from geofence.accounts._store import FOREVER
from geofence.config._loader import _Loader, _read_file
from geofence.config._policy import Policy
from geofence.replay._record import Record
from geofence.replay._source import Numbered, ReplayError

MEMORY_STORE = "memory://"
#: The account actions, worst first: a row's action is the worst one the account got.
ACTIONS = ("suspended", "blocked", "grace", "warned")
_RANK = {name: rank for rank, name in enumerate(ACTIONS)}
COLUMNS = (
    "account",
    "first_seen",
    "last_seen",
    "requests",
    "blocked",
    "warned",
    "countries",
    "rule",
    "action",
    "enforce_from",
    "suspended_until",
)
USER_FIELD = "remote_user"  # the user field of combined, JSON lines and CSV
# Formats whose lines are objects or rows with named fields (--account-field reads any).
_NAMED = frozenset({"jsonl", "csv", "cloudflare"})


def memory_policy(obj: Engine | Policy | Mapping[str, Any] | str | os.PathLike[str]) -> Policy:
    """The policy ``obj`` names, with ``[accounts] store`` forced to ``memory://``.

    A path or a mapping is rewritten before it is loaded (so no Redis client is ever made);
    an Engine or a Policy already made keeps its store, which must then be ``memory://``."""
    if isinstance(obj, Engine):
        obj = obj.policy
    if isinstance(obj, Policy):
        if obj.accounts is not None and obj.accounts.store != MEMORY_STORE:
            raise ReplayError(
                f"the policy's accounts.store is {obj.accounts.store!r}: a replay runs the "
                "account rules on memory:// only; pass the policy as a path or a mapping "
                "(its store is then replaced by memory://)"
            )
        return obj
    if isinstance(obj, Mapping):
        return _Loader(base_dir=None).policy(_with_memory_store(obj))
    if isinstance(obj, (str, os.PathLike)):
        shown = os.fspath(obj)
        if not isinstance(shown, str):
            raise ConfigError("", f"config path must be text, got bytes {shown!r}")
        data, base_dir = _read_file(shown)
        try:
            return _Loader(base_dir=base_dir).policy(_with_memory_store(data))
        except ConfigError as error:
            raise ConfigError(error.key, f"{error.reason} (in {shown})") from None
    raise ConfigError(
        "",
        f"expected a mapping (dict) or the path of a .toml / .json file, got {type(obj).__name__}",
    )


def _with_memory_store(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    table = raw.get("accounts")
    if not isinstance(table, Mapping):
        return raw  # no [accounts] (or a bad one: the loader says why)
    return {**raw, "accounts": {**table, "store": MEMORY_STORE}}


# -- the account field -----------------------------------------------------------------------


class FieldTap:
    """Passes a log's numbered lines through, remembering the last one, so that a record's
    named field (``--account-field``) can be read from its own line. Used only for a field
    other than the format's user field."""

    def __init__(self, format: str, name: str) -> None:
        self.format = format
        self.name = name.lower().lstrip("$") if format == "csv" else name
        self.number = 0
        self.text = ""
        self._csv: tuple[list[str], str] | None = None

    def lines(self, lines: Iterator[Numbered]) -> Iterator[Numbered]:
        for number, text in lines:
            self.number, self.text = number, text
            if self.format == "csv" and self._csv is None:
                self._csv = _csv_header(text.lstrip("\ufeff"))
            yield number, text

    def value(self, record: Record) -> str | None:
        """The field's value on the record's line, or None (absent, empty, ``-``)."""
        if record.line != self.number:
            return None  # not the line just read (a reader that looks ahead): no guess
        found: object = None
        if self.format == "csv":
            if self._csv is None:
                return None
            names, delimiter = self._csv
            try:
                values = next(csv.reader([self.text], delimiter=delimiter), [])
            except csv.Error:
                return None
            row = dict(zip(names, values, strict=False))
            found = row.get(self.name)
        else:
            try:
                item = json.loads(self.text)
            except (ValueError, RecursionError):
                return None
            if isinstance(item, dict):
                found = item.get(self.name)
        if found is None or isinstance(found, (dict, list, bool)):
            return None
        text = str(found).strip()
        return text if text and text != "-" else None


def _csv_header(line: str) -> tuple[list[str], str] | None:
    from geofence.replay._csv import _header

    return _header(line)


def account_tap(format: str, field_name: str | None) -> FieldTap | None:
    """The tap that reads ``--account-field`` on ``format``'s lines; None when the record's
    own user field is the account (no field named, or the format's user field)."""
    if field_name is None:
        return None
    if format in _NAMED:
        if format != "cloudflare" and field_name.lower().lstrip("$") == USER_FIELD:
            return None
        return FieldTap(format, field_name)
    if field_name.lstrip("$") == USER_FIELD and format == "combined":
        return None
    raise ReplayError(
        f"--account-field {field_name}: the {format} format has no named fields"
        + (" (its user field is remote_user)" if format == "combined" else " and no user field")
    )


# -- the accounts seen -----------------------------------------------------------------------


@dataclass
class Seen:
    """One account, as the replay saw it."""

    first: datetime
    last: datetime
    requests: int = 0
    blocked: int = 0
    warned: int = 0
    countries: Counter[str] = field(default_factory=Counter)
    rule: str | None = None  # of its first warn or block
    action: str | None = None  # the worst of ACTIONS, or None: never warned nor blocked
    enforce_from: datetime | None = None
    grace_from: datetime | None = None  # its own date, from its first account_grace decision
    suspended_until: str = ""


def account_action(decision: Decision) -> str | None:
    """What a decision does to its account: one of :data:`ACTIONS`, or None (allowed, or
    only in report mode)."""
    if decision.action == "allow" or not decision.enforced:
        return None
    if decision.reason == "account_suspended":
        return "suspended"
    if decision.action == "block":
        return "blocked"
    return "grace" if decision.reason == "account_grace" else "warned"


class Accounts:
    """Decides the records that carry an account and keeps one :class:`Seen` per account.

    ``policy``: the replayed policy, already with a memory store (:func:`memory_policy`).
    Memory grows with the number of distinct accounts, not with the log."""

    def __init__(self, policy: Policy, at: datetime | None = None) -> None:
        self.at = at
        self.rules_on = policy.accounts is not None
        # An engine of its own: a fresh store, and its decisions (logged and sent as events
        # by the account path) never mix with the memoised ones of the report.
        self.engine: Engine | None = Engine(policy) if self.rules_on else None
        self._header = policy.client_ip.header
        self._convert: Callable[[str], str] = _forwarded_as(self._header)
        self.seen: dict[str, Seen] = {}
        self.home_rules = any(r.home_regions or r.home_mismatch for r in policy.rules)

    def decide(self, record: Record, account: str, plain: Decision) -> Decision:
        """The record's decision for ``account`` (``plain``, its decision by client alone,
        when the policy has no account rules), counted in the account's row."""
        now = self.at or record.time
        if self.engine is not None:
            headers = [(self._header, self._convert(record.forwarded))] if record.forwarded else []
            request = RequestInfo(record.peer, headers, record.method, record.path, record.host)
            decision = self.engine.decide(request, now=now, account=Account(id=account))
        else:
            decision = plain
        seen = self.seen.get(account)
        if seen is None:
            seen = self.seen[account] = Seen(record.time, record.time)
        elif record.time < seen.first:
            seen.first = record.time
        elif record.time > seen.last:
            seen.last = record.time
        seen.requests += 1
        if decision.country:
            seen.countries[decision.country] += 1
        action = account_action(decision)
        if action is not None:
            if action in ("suspended", "blocked"):
                seen.blocked += 1
            else:
                seen.warned += 1
            if seen.action is None:
                seen.rule = decision.rule
                seen.enforce_from = decision.enforce_from
            if action == "grace" and seen.grace_from is None:
                seen.grace_from = decision.enforce_from
            if seen.action is None or _RANK[action] < _RANK[seen.action]:
                seen.action = action
        return decision

    def finish(self) -> None:
        """Reads each suspended account's end of suspension from the store."""
        store = self.engine.store if self.engine is not None else None
        if store is None:
            return
        for name, seen in self.seen.items():
            if seen.action != "suspended":
                continue
            state = store.fetch(name, seen.last.timestamp())
            until = state.suspended_until
            if until == FOREVER:
                seen.suspended_until = "until cleared"
            elif until is not None:
                seen.suspended_until = _iso(datetime.fromtimestamp(until, timezone.utc))

    def rows(self) -> list[dict[str, str]]:
        """One row per account warned, in account grace, blocked or suspended: worst action
        first, then most requests blocked and warned, then the account id."""
        affected = [(name, s) for name, s in self.seen.items() if s.action is not None]
        affected.sort(
            key=lambda item: (
                _RANK[item[1].action or ""],
                -item[1].blocked,
                -item[1].warned,
                item[0],
            )
        )
        return [_row(name, seen) for name, seen in affected]

    def totals(self) -> dict[str, Any]:
        """What the report's JSON says of the accounts."""
        counts = Counter(s.action for s in self.seen.values() if s.action is not None)
        return {
            "account_rules": self.rules_on,
            "seen": len(self.seen),
            "affected": {name: counts.get(name, 0) for name in ACTIONS},
        }

    def summary(self) -> str:
        """One line for the text report: how many accounts, and what happens to them."""
        totals = self.totals()
        affected = totals["affected"]
        told = sum(affected.values())
        words = {"grace": "in account grace"}
        parts = [f"{affected[a]} {words.get(a, a)}" for a in ACTIONS if affected[a]]
        rules = "account rules on a memory store" if self.rules_on else "no account rules"
        return f"accounts ({rules}): {totals['seen']} seen, {told} to tell" + (
            f" ({', '.join(parts)})" if parts else ""
        )

    def notes(self) -> list[str]:
        notes: list[str] = []
        if not self.rules_on:
            notes.append(
                "the policy has no [accounts]: the account rules are off; the accounts listed "
                "are those of warned and blocked lines, by their client alone"
            )
        else:
            notes.append(
                "the tables count each line's decision by its client alone; what the account "
                "rules make of them (account grace, suspension) is in the accounts CSV"
            )
        if self.rules_on and self.home_rules:
            notes.append(
                "a log gives an account's id, not its home country: home_regions and "
                "home_mismatch never match in a replay"
            )
        return notes


def _row(name: str, seen: Seen) -> dict[str, str]:
    ranked = sorted(seen.countries.items(), key=lambda item: (-item[1], item[0]))
    enforce_from = seen.grace_from or seen.enforce_from
    return {
        "account": name,
        "first_seen": _iso(seen.first),
        "last_seen": _iso(seen.last),
        "requests": str(seen.requests),
        "blocked": str(seen.blocked),
        "warned": str(seen.warned),
        "countries": " ".join(country for country, _ in ranked),
        "rule": seen.rule or "",
        "action": seen.action or "",
        "enforce_from": _iso(enforce_from) if enforce_from is not None else "",
        "suspended_until": seen.suspended_until,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def write_csv(rows: list[dict[str, str]], out: io.TextIOBase | Any) -> None:
    """RFC 4180: a header, CR LF line ends, fields quoted when they need it."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)


def _forwarded_as(header: str) -> Callable[[str], str]:
    from geofence.replay._loop import _forwarded_as as convert

    return convert(header)
