"""The replay loop: records -> decisions (memoised) -> a :class:`Report`.

Each record is decided by the same engine, with the same client-IP rules, as a live request:
``RequestInfo(peer=record.peer, headers=[(the header the policy reads, record.forwarded)],
method, path, host)`` at the record's own time (or ``at``). Decisions are memoised per
(peer, forwarding value, method, path, host when some rule reads it, minute, phase segment):
the minute bounds how long one answer is reused, and the *phase segment* (which of the
policy's rule dates, ``warn_from`` and ``enforce_from`` of every rule of both policies, the
moment lies between) keeps the memo exact: two moments in one minute on either side of a rule
date have different keys, so a line one second before ``enforce_from`` warns and one at it
blocks, exactly as the engine's dated path decides them. Without accounts a decision depends
on time only through that segment, so a memo hit returns what the engine would.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from geofence._cache import bounded_put
from geofence._engine import OFF, Engine
from geofence._model import Decision, RequestInfo
from geofence.config._policy import Policy
from geofence.replay._record import Record
from geofence.replay._report import Outcome, outcome
from geofence.rules._rule import micros

# (decision, baseline's decision, the outcome of each as the report counts it)
Decided = tuple[Decision, "Decision | None", Outcome, "Outcome | None"]
MEMO_SIZE = 65_536  # distinct keys remembered; full, the memo is emptied (geofence._cache)
_MINUTE = 60_000_000  # microseconds


def boundaries(*policies: Policy) -> tuple[int, ...]:
    """Every instant (microseconds) at which some rule of these policies changes phase."""
    moments = {
        micros(moment)
        for policy in policies
        for rule in policy.rules
        for moment in (rule.warn_from, rule.enforce_from)
        if moment is not None
    }
    return tuple(sorted(moments))


def _forwarded_as(header: str) -> Callable[[str], str]:
    """How a log's X-Forwarded-For value is given to an engine that reads ``header``: as is,
    or for ``forwarded`` rewritten as RFC 7239 ``for=`` elements (IPv6 quoted, bracketed)."""
    if header != "forwarded":
        return lambda value: value

    def element(entry: str) -> str:
        if ":" not in entry:
            return f"for={entry}"  # an IPv4 address (or a token the engine will refuse)
        if entry.startswith("[") or entry.count(":") == 1:
            return f'for="{entry}"'  # [IPv6]:port, IPv4:port
        return f'for="[{entry}]"'  # a bare IPv6 address

    def rfc7239(value: str) -> str:
        return ", ".join(element(p) for p in (p.strip() for p in value.split(",")) if p)

    return rfc7239


def quiet_decide(engine: Engine, request: RequestInfo, now: datetime) -> Decision:
    """``engine.decide(request, now=now)`` without its per-decision log line and event: a
    replay of a million lines must not log a million blocks as if they happened now."""
    if not engine.active:
        return OFF
    return engine._dated_entry(request, now, quiet=True)[1]


class Decider:
    """Decides records for a policy and an optional baseline, with one memo for both."""

    def __init__(self, engine: Engine, baseline: Engine | None, at: datetime | None) -> None:
        self.engine = engine
        self.baseline = baseline
        self.at = at
        policies = [engine.policy] + ([baseline.policy] if baseline is not None else [])
        self._bounds = boundaries(*policies)
        self._needs_host = engine.needs_host or (baseline is not None and baseline.needs_host)
        self._header = engine.policy.client_ip.header
        self._convert = _forwarded_as(self._header)
        if baseline is not None:
            self._base_header = baseline.policy.client_ip.header
            self._base_convert = _forwarded_as(self._base_header)
        self._memo: dict[tuple[Any, ...], Decided] = {}
        self.asked = 0  # memo misses: how often the engines were asked
        self.hostless = 0  # lines without a host, when some rule reads the host

    def decide(self, record: Record) -> Decided:
        """(decision, baseline's decision or None, their outcomes as the report counts them)."""
        now = self.at or record.time
        moment = micros(now)
        if self._needs_host and not record.host:
            self.hostless += 1
        key = (
            record.peer,
            record.forwarded,
            record.method,
            record.path,
            record.host if self._needs_host else None,
            moment // _MINUTE,
            bisect_right(self._bounds, moment),
        )
        found = self._memo.get(key)
        if found is not None:
            return found
        self.asked += 1
        decision = self._ask(self.engine, self._header, self._convert, record, now)
        base = base_outcome = None
        if self.baseline is not None:
            base = self._ask(self.baseline, self._base_header, self._base_convert, record, now)
            base_outcome = outcome(base)
        found = (decision, base, outcome(decision), base_outcome)
        if len(record.path) <= 1024:  # a huge path is not worth pinning in memory
            bounded_put(self._memo, MEMO_SIZE, key, found)
        return found

    @staticmethod
    def _ask(
        engine: Engine,
        header: str,
        convert: Callable[[str], str],
        record: Record,
        now: datetime,
    ) -> Decision:
        headers = [(header, convert(record.forwarded))] if record.forwarded else []
        request = RequestInfo(record.peer, headers, record.method, record.path, record.host)
        return quiet_decide(engine, request, now)


def engine_of(policy: Engine | Policy | Any) -> Engine:
    """An Engine from an Engine, a Policy, a mapping or a .toml / .json path."""
    if isinstance(policy, Engine):
        return policy
    return Engine.from_config(policy)


def decide_all(records: Iterable[Record], decider: Decider) -> Iterator[tuple[Record, Decided]]:
    """Each record with its decisions: the seam a progress bar or a parallel runner wraps."""
    decide = decider.decide
    for record in records:
        yield record, decide(record)
