"""The replay loop: records -> decisions (memoised) -> a :class:`Report`.

Each record is decided by the same engine, with the same client-IP rules, as a live request:
``RequestInfo(peer=record.peer, headers=[(the header the policy reads, record.forwarded)],
method, path, host)`` at the record's own time (or ``at``). Decisions are memoised; the
*phase segment* (which of the policy's rule dates, ``warn_from`` and ``enforce_from`` of
every rule of both policies, the moment lies between) is part of every memo key, which keeps
the memo exact: two moments on either side of a rule date have different keys, so a line one
second before ``enforce_from`` warns and one at it blocks, exactly as the engine's dated path
decides them. Without accounts a decision depends on time only through that segment.

Two memos (see :class:`Decider`): per (peer, forwarding value, method, path, host when some
rule reads it, minute, segment), where every decision is the engine's own for that client
(:func:`~geofence.replay.decisions`); and, for a replay that counts outcomes, per (client
facts, method, path, host, segment), the client facts found once per (peer, forwarding
value). Profiled (cProfile) on a 200,000-line log with 10,000 clients, the first asked the
engine for 91 % of the lines (a client rarely repeats a path within a minute): deciding was
59 % of the replay's time, the engine calls alone 40 %. The second asks it 3,486 times there
(5,813 times for 1,000,000 lines and 50,000 clients, bench/replay.py), and its loop costs
about 0.35 µs a line once clients are known.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from geofence import _overlay
from geofence._cache import bounded_put
from geofence._engine import OFF, Engine
from geofence._errors import DatabaseError
from geofence._model import Decision, RequestInfo
from geofence.clientip._addresses import is_private
from geofence.config._policy import Policy
from geofence.replay._record import Record
from geofence.replay._report import Outcome, outcome
from geofence.rules._rule import EPOCH, micros

# (decision, baseline's decision, the outcome of each as the report counts it)
Decided = tuple[Decision, "Decision | None", Outcome, "Outcome | None"]
MEMO_SIZE = 65_536  # distinct keys remembered; full, the memo is emptied (geofence._cache)
_MINUTE = 60_000_000  # microseconds
_NEVER = datetime.min.replace(tzinfo=timezone.utc)
_FOREVER = datetime.max.replace(tzinfo=timezone.utc)


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


# What a client is to an engine's rules: its lookup facts, or why it was never looked up.
ClientFacts = tuple[Any, ...]
_UNRESOLVED: ClientFacts = ("unresolved",)
_EXEMPT: ClientFacts = ("exempt_ip",)
_PRIVATE: ClientFacts = ("private",)


def client_facts(
    engine: Engine, peer: str | None, headers: list[tuple[str, str]]
) -> ClientFacts | None:
    """Everything ``engine``'s decision reads of the client, in the order ``Engine._evaluate``
    reads it (exempt address, unresolved, private, the databases' answer); None when the
    databases failed (that line is decided alone). Two requests with equal facts, method,
    path, host and phase segment get decisions with the same outcome."""
    ip = engine._resolver.resolve(peer, headers).ip
    if ip is None:
        return _UNRESOLVED
    exempt_ips = engine._exempt[0]
    if exempt_ips is not None and ip in exempt_ips:
        return _EXEMPT
    if is_private(ip):
        return _PRIVATE
    try:
        record, anonymizers, asn = engine._lookup(ip)
    except DatabaseError:
        return None
    return (record.found, record.country, record.subdivisions, anonymizers, asn)


class Decider:
    """Decides records for a policy and an optional baseline, with one memo for both.

    ``shared``: for callers that count outcomes only (:func:`replay`). The memo is then keyed
    by what the engines' rules read of a request, (client facts, method, path, host, phase
    segment), where the client facts of each (peer, forwarding value) are found once (its
    address resolved and looked up, see :func:`client_facts`): one engine call per distinct
    verdict rather than per client and minute. The :class:`Decision` returned is then the
    one made for the first client with those facts (its ``client_ip`` and ``ref`` are that
    client's); its outcome is exact. Without ``shared`` each decision is the engine's own for
    that client (:func:`decisions`).
    """

    def __init__(
        self,
        engine: Engine,
        baseline: Engine | None,
        at: datetime | None,
        shared: bool = False,
    ) -> None:
        self.engine = engine
        self.baseline = baseline
        self.at = at
        self.shared = shared
        policies = [engine.policy] + ([baseline.policy] if baseline is not None else [])
        self._bounds = boundaries(*policies)
        # The same instants as aware datetimes: a line's segment is found by comparing its
        # datetime, without converting it to microseconds (datetime work per line).
        self._bound_times = [EPOCH + timedelta(microseconds=b) for b in self._bounds]
        self._at_segment = bisect_right(self._bounds, micros(at)) if at is not None else None
        self._needs_host = engine.needs_host or (baseline is not None and baseline.needs_host)
        self._header = engine.policy.client_ip.header
        self._convert = _forwarded_as(self._header)
        if baseline is not None:
            self._base_header = baseline.policy.client_ip.header
            self._base_convert = _forwarded_as(self._base_header)
        self._memo: dict[tuple[Any, ...], Decided] = {}
        # peer, or (peer, forwarding value) -> the number of the client's facts for each
        # engine (see _numbers); -1: undecidable by facts (a database error), decided alone.
        self._clients: dict[Any, int] = {}
        self._numbers: dict[Any, int] = {}  # facts -> a small number (a few per country)
        self._generations = self._generation()
        self.asked = 0  # memo misses: how often the engines were asked
        self.hostless = 0  # lines without a host, when some rule reads the host

    def decide(self, record: Record) -> Decided:
        """(decision, baseline's decision or None, their outcomes as the report counts them)."""
        if self.shared and _overlay.ACTIVE is None:
            return self._decide_shared(record)
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
        found = self._ask_both(record, now)
        if len(record.path) <= 1024:  # a huge path is not worth pinning in memory
            bounded_put(self._memo, MEMO_SIZE, key, found)
        return found

    def _decide_shared(self, record: Record) -> Decided:
        for _, found in self.shared_loop((record,)):
            return found
        raise AssertionError("unreachable")  # pragma: no cover

    def shared_loop(self, records: Iterable[Record]) -> Iterator[tuple[Record, Decided]]:
        """The hot loop of a replay: per line, two dictionary probes when nothing is new.
        Everything it reads per line is a local; each client's facts are a small number, so
        that the memo key hashes no nested tuple; the line's phase segment is found by two
        datetime comparisons while lines stay in one segment."""
        clients_get = self._clients.get
        memo_get = self._memo.get
        needs_host = self._needs_host
        bound_times = self._bound_times
        fixed = self._at_segment
        segment, low, high = 0, _FOREVER, _NEVER  # an empty window: found at the first line
        if not bound_times and fixed is None:
            fixed = 0
        for record in records:
            peer, forwarded = record.peer, record.forwarded
            client: Any = peer if forwarded is None else (peer, forwarded)
            facts = clients_get(client)
            if facts is None:
                facts = self._facts(peer, forwarded, client)
            host: str | None = None
            if needs_host:
                host = record.host
                if not host:
                    self.hostless += 1
            if fixed is None:
                moment = record.time
                if not low <= moment < high:
                    segment = bisect_right(bound_times, moment)
                    low = bound_times[segment - 1] if segment else _NEVER
                    high = bound_times[segment] if segment < len(bound_times) else _FOREVER
            else:
                segment = fixed
            if facts >= 0:
                key: tuple[Any, ...] = (facts, record.method, record.path, host, segment)
            else:
                key = (peer, forwarded, record.method, record.path, host, segment)
            found = memo_get(key)
            if found is None:
                found = self._miss(record, key, facts)
            yield record, found

    def _miss(self, record: Record, key: tuple[Any, ...], facts: int) -> Decided:
        found = self._ask_both(record, self.at or record.time)
        if self._generation() != self._generations:
            # A database was reloaded during the replay: facts found before may be stale.
            self._generations = self._generation()
            self._clients.clear()
            self._memo.clear()
            return found
        if len(record.path) <= 1024 and facts >= 0:
            bounded_put(self._memo, MEMO_SIZE, key, found)
        return found

    def _facts(self, peer: str | None, forwarded: str | None, client: Any) -> int:
        """The number of the client's facts (for both engines); -1: decided per line."""
        ours = client_facts(
            self.engine, peer, self._headers(self._header, self._convert, forwarded)
        )
        facts: Any = ours
        if self.baseline is not None and ours is not None:
            headers = self._headers(self._base_header, self._base_convert, forwarded)
            theirs = client_facts(self.baseline, peer, headers)
            facts = None if theirs is None else (ours, theirs)
        number = -1 if facts is None else self._numbers.setdefault(facts, len(self._numbers))
        if forwarded is None or len(forwarded) <= 1024:  # a huge header is not worth keeping
            bounded_put(self._clients, MEMO_SIZE, client, number)
        return number

    def _generation(self) -> tuple[int, int]:
        base = self.baseline._generation if self.baseline is not None else 0
        return (self.engine._generation, base)

    def _ask_both(self, record: Record, now: datetime) -> Decided:
        self.asked += 1
        decision = self._ask(self.engine, self._header, self._convert, record, now)
        base = base_outcome = None
        if self.baseline is not None:
            base = self._ask(self.baseline, self._base_header, self._base_convert, record, now)
            base_outcome = outcome(base)
        return (decision, base, outcome(decision), base_outcome)

    @staticmethod
    def _headers(
        header: str, convert: Callable[[str], str], forwarded: str | None
    ) -> list[tuple[str, str]]:
        return [(header, convert(forwarded))] if forwarded else []

    @classmethod
    def _ask(
        cls,
        engine: Engine,
        header: str,
        convert: Callable[[str], str],
        record: Record,
        now: datetime,
    ) -> Decision:
        headers = cls._headers(header, convert, record.forwarded)
        request = RequestInfo(record.peer, headers, record.method, record.path, record.host)
        return quiet_decide(engine, request, now)


def engine_of(policy: Engine | Policy | Any) -> Engine:
    """An Engine from an Engine, a Policy, a mapping or a .toml / .json path."""
    if isinstance(policy, Engine):
        return policy
    return Engine.from_config(policy)


def decide_all(records: Iterable[Record], decider: Decider) -> Iterator[tuple[Record, Decided]]:
    """Each record with its decisions: the seam a progress bar or a parallel runner wraps."""
    if decider.shared and _overlay.ACTIVE is None:
        # (A testing overlay pretends facts per address: it needs the per-client memo.)
        return decider.shared_loop(records)
    return _each(records, decider.decide)


def _each(
    records: Iterable[Record], decide: Callable[[Record], Decided]
) -> Iterator[tuple[Record, Decided]]:
    for record in records:
        yield record, decide(record)
