"""The decision engine: request facts in, :class:`Decision` out. All policy lives here."""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from geofence import _logs as logs
from geofence import _overlay
from geofence._cache import bounded_put
from geofence._errors import ConfigError, DatabaseError
from geofence._events import Emitter, EventCallback
from geofence._model import Decision, DecisionKey, Facts, RequestInfo, with_client
from geofence._observer import Observer
from geofence.accounts._account import Account
from geofence.clientip._addresses import IP, NetworkSet, is_private
from geofence.clientip._resolver import MAX_LINE, ClientIP, ClientResolver
from geofence.config._loader import load_policy
from geofence.config._policy import Policy
from geofence.geoip._databases import (
    AnonymousDB,
    AsnDB,
    CountryDB,
    open_anonymous_db,
    open_asn_db,
    open_country_db,
)
from geofence.geoip._records import GeoRecord
from geofence.geoip._reloading import Reloading
from geofence.geoip._watch import DatabaseWatch, check_age, failure_event
from geofence.hotpath import new_tuple
from geofence.hotpath._newclient import new_client_step
from geofence.hotpath._probe import (
    FRONT_ANSWER,
    FRONT_CACHED,
    FRONT_DECIDE,
    FRONT_QUICK,
    CacheProbe,
    front,
    key_type,
    make_probe,
)
from geofence.hotpath._probe import NATIVE as NATIVE_PROBE
from geofence.http._answer import Answer, new_answer
from geofence.http._responses import Responder, Response, new_response
from geofence.metrics import TALLY, attach
from geofence.rules._globs import compile_globs, has_dot_segment
from geofence.rules._groups import groups_containing
from geofence.rules._rule import Rule, micros

if TYPE_CHECKING:
    from geofence.accounts._ledger import Ledger
    from geofence.accounts._store import Store

OFF = Decision(action="allow", enforced=False, reason="off")
OFF_ANSWER = Answer(OFF)
# Decision reasons for which the rules were consulted (see explain()).
_CONSULTS_RULES = frozenset(
    {"rule", "default", "not_found", "no_country", "unresolved_client", "account_grace"}
)
NO_ANONYMIZERS: frozenset[str] = frozenset()
_wall_clock = time.time  # bound once: the hot path reads it on every request
Epoch = tuple[int, int]  # (time segment, database generation)
# Builds a named tuple from a tuple of its fields in C, without its Python-level __new__.
_new = new_tuple
# The decision cache's keys: DecisionKey, or with the C probe its subclass whose == is faster
# (a cache hit compares the stored key with the request's (peer, method, path)).
_Key = key_type(DecisionKey)
# (epoch, decision, attention, answer). attention: True for a decision that is reported on
# each request (logged, an event, counted: see Observer.seen); for a quiet one (an allow), its
# counter when metrics are on (an iterator: each next() counts one), else False, so that a
# repeated allow costs one branch.
Entry = tuple[Epoch, Decision, "bool | Iterator[None]", "Answer | None"]
# Seconds from a window's edge (a rule date) within which the float wall clock is not trusted
# to tell the side of the date: the exact clock is read instead.
_EXACT = 0.001
STALE_CHECK_INTERVAL = 86_400.0  # seconds between checks of database ages when nothing reloads
CACHE_SIZE = 65_536  # decisions, per (client, method, path)
NETWORK_CACHE_SIZE = 16_384  # lookup results, per /24 (IPv4) or /48 (IPv6)
# What the databases say about an address: (record, network types, ASN or None).
Found = tuple[GeoRecord, frozenset[str], "int | None"]
Finder = Callable[[IP], tuple[Any, int]]  # a database's find_prefix
# The fields in the order _verdict builds decisions from them.
_VERDICT_FIELDS = (
    "action", "enforced", "reason", "rule", "country", "subdivisions", "anonymizers", "asn",
    "status", "warn_from", "enforce_from", "phase", "report_rules", "account",
    "client_ip", "client_detail", "ref",
)  # fmt: skip
assert Decision._fields == _VERDICT_FIELDS, "_verdict builds decisions in this order"
VERDICT_CACHE_SIZE = 4096  # what the rules say, per (time segment, method, path, lookup result)
# Verdicts that do not depend on rules (see with_client).
EXEMPT_IP = Decision(action="allow", enforced=True, reason="exempt_ip")
EXEMPT_PATH = Decision(action="allow", enforced=True, reason="exempt_path")
PRIVATE = Decision(action="allow", enforced=True, reason="private")


class _Via:
    """A key member that no peer, host or home equals."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "via"


# In the cache key of a request from a trusted proxy: (peer, method, path, _VIA, header line).
_VIA = _Via()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _at(micros: int | None) -> datetime | None:
    """An Event's time for a decision made at ``micros`` (None: now, the Observer's default)."""
    return None if micros is None else _utc(micros / 1_000_000)


def _micros(now: datetime) -> int:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (e.g. datetime.now(timezone.utc))")
    return micros(now)


class Engine:
    """Built once at startup from a validated :class:`Policy`; ``decide`` is thread-safe."""

    def __init__(
        self,
        policy: Policy,
        *,
        clock: Callable[[], float] | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.policy = policy
        injected_clock = clock is not None
        clock = clock or time.monotonic
        self._off = policy.mode == "off"
        self._rules = tuple(Rule.compile(r) for r in policy.rules)
        self._resolver = ClientResolver(policy.client_ip)
        exempt_ips = NetworkSet(policy.exempt_ips)
        # (addresses, paths): what is never decided; each None when the policy has none.
        self._exempt = (exempt_ips if exempt_ips else None, compile_globs(policy.exempt_paths))
        self._responder = Responder(policy)
        # Tells the app (db_reloaded, db_refused events) and the operator (stale warnings)
        # what the databases do. With an injected clock, database ages move with it too.
        watch = DatabaseWatch(policy.geoip.max_age, clock, None if injected_clock else time.time)
        watch.connect(self)
        self.country_db: CountryDB = open_country_db(policy.geoip, clock, watch)
        self.anonymous_db: AnonymousDB | None = open_anonymous_db(policy.geoip, clock, watch)
        self.asn_db: AsnDB | None = open_asn_db(policy.geoip, clock, watch)
        # How _lookup asks each database: (country, anonymous, asn, networks). The anonymous-IP
        # database is only consulted when some rule asks about network types, the ASN
        # database when some rule has `asns` (else None). A reloading file is asked without
        # its own check of the file: the engine polls it (_tick), so a lookup never reloads
        # behind its back. networks: what the databases said for each /24 (IPv4) or /48
        # (IPv6) that lies inside one network of every database asked, so a new client in a
        # network seen before is answered without a lookup (emptied on a reload).
        # (One attribute for all: an instance with more than 29 attributes loses CPython's
        # shared-key dict, and every attribute read on the hot path gets slower.)
        anonymous_db, asn_db = self.anonymous_db, self.asn_db
        self._finds: tuple[Finder, Finder | None, Finder | None, dict[int, Found]] = (
            _finder(self.country_db),
            _finder(anonymous_db)
            if anonymous_db is not None and any("anonymizers" in r.needs for r in self._rules)
            else None,
            _finder(asn_db)
            if asn_db is not None and any("asn" in r.needs for r in self._rules)
            else None,
            {},
        )
        # Rules with `hosts` make the request's host a fact, and so part of the decision
        # cache's key (see _entry); without them the host is never read.
        self._needs_host = any("host" in r.needs for r in self._rules)
        self._check_database_fits()
        #: Receivers of :class:`geofence.Event` (``on_event``; adapters add their signals).
        self.events = Emitter(on_event)
        # Logs, events and metric counts of decisions; references of warns and blocks.
        counting = policy.metrics.prometheus or policy.metrics.opentelemetry
        self._observer = Observer(self.events, TALLY if counting else None, clock=clock)
        # Accounts change decisions only with [accounts] (DESIGN "Accounts"). Rules that ask
        # about the account's home make its home country part of the request's facts.
        self._home = any("account" in r.needs for r in self._rules)
        self._ledger: Ledger | None = None
        if policy.accounts is not None:
            # Imported here: the ledger and the stores only for a policy with [accounts].
            from geofence.accounts._ledger import Ledger

            self._ledger = Ledger(policy, self._rules, self.events, clock)
        # Every instant at which some rule changes phase; between two of them nothing does.
        # (in microseconds, in seconds): the first exact, the second for the float wall clock.
        boundaries = tuple(
            sorted({t for r in self._rules for t in (r.starts, r.enforces) if t is not None})
        )
        self._boundaries = (boundaries, tuple(b / 1_000_000 for b in boundaries))
        # A client whose ClientIP carries this very detail string is its own socket peer (no
        # trusted proxy): its decisions are cached per peer. None under ``hops``.
        self._peer_detail = self._resolver.peer_detail
        # No trusted proxy and no hops: the client is always the socket peer, so decisions
        # are cached per peer and a new client's peer is parsed without the resolver's cache.
        self._direct = self._resolver.direct
        # key -> (epoch, decision, whether it is logged, its answer: None for an enforced
        # block, whose response depends on the request's Accept and method)
        # An exact dict, written with bounded_put: it is read on every request, and CPython
        # specialises method calls on an exact dict only.
        self._cache: dict[tuple[object, ...], Entry] = {}
        # (time segment, facts) -> verdict
        self._verdicts: dict[tuple[int, Facts], Decision] = {}
        self._clock = clock
        reloading = any(isinstance(db, Reloading) for db in self._databases())
        interval: float | None = policy.geoip.reload_interval if reloading else None
        if interval is None and policy.geoip.max_age is not None:
            # Nothing reloads, but a stale database is still reported once a day.
            interval = STALE_CHECK_INTERVAL
        self._poll_interval = interval
        self._poll_at: float = clock() + interval if interval is not None else 0.0
        # With the default clock, database checks are scheduled by the wall-clock window (one
        # clock read per request); an injected clock (tests) is read on every request instead.
        self._poll_each = interval is not None and injected_clock
        # (start, end, epoch): the wall-clock window the last request fell in (empty at first)
        # and its epoch, (time segment, database generation). A cache entry is valid while it
        # carries the current epoch object.
        self._generation = 0
        self._state: tuple[float, float, Epoch] = (0.0, 0.0, (0, 0))
        # The cache hit of decide(), answer() and cached() in C when it is built: given the
        # window and epoch of _state whenever they change (see _tick).
        self._probe: CacheProbe[Decision, Answer | None] = make_probe(self._cache, _wall_clock)
        self._state_lock = threading.Lock()
        # A new client's entry in one C call when built, for the common case (see _entry).
        self._miss = new_client_step(
            peer_detail=self._peer_detail,
            needs_host=self._needs_host,
            trusted=self._resolver.trusted,
            exempt_ips=self._exempt[0],
            exempt_paths=self._exempt[1],
            cache=self._cache,
            verdicts=self._verdicts,
            key_type=_Key,
            observer=self._observer,
            responder=self._responder,
            cache_size=CACHE_SIZE,
            network_size=NETWORK_CACHE_SIZE,
            verdict_size=VERDICT_CACHE_SIZE,
            no_anonymizers=NO_ANONYMIZERS,
        )
        _overlay.register(self)  # for geofence.testing; costs nothing per request
        if counting:
            attach(self)  # the collectors read this engine's databases and rules

    @classmethod
    def from_config(
        cls,
        obj: Mapping[str, Any] | str | os.PathLike[str] | Policy,
        *,
        clock: Callable[[], float] | None = None,
        on_event: EventCallback | None = None,
    ) -> Engine:
        """Build an engine from a dict, a ``.toml`` / ``.json`` path, or a Policy.

        ``on_event`` is called with each :class:`geofence.Event` (what it raises is logged,
        never passed to the request). ``clock`` is the monotonic clock that schedules
        database reload checks and the account store's circuit breaker (tests inject one).
        Raises :class:`ConfigError` for any problem with the config or databases.
        """
        policy = obj if isinstance(obj, Policy) else load_policy(obj)
        return cls(policy, clock=clock, on_event=on_event)

    def _check_database_fits(self) -> None:
        if self.country_db.has_subdivisions:
            return
        for index, rule in enumerate(self._rules):
            codes = sorted(rule.subdivision_codes)
            if codes:
                # Written by hand or brought in by a built-in group: say which, or the user
                # looks in vain for a subdivision in their policy.
                groups = groups_containing(codes[0])
                origin = f" (listed by the built-in group '@{groups[0]}')" if groups else ""
                raise ConfigError(
                    f"rules[{index}].regions",
                    f"subdivision code {codes[0]!r}{origin} needs a database with "
                    f"subdivisions, but {self.country_db.description} has none; set "
                    "geoip.country_db to a GeoIP2/GeoLite2 City or Enterprise database",
                )

    def _databases(self) -> tuple[object, ...]:
        return (self.country_db, self.anonymous_db, self.asn_db)

    # -- per request -------------------------------------------------------------------------

    @property
    def needs_host(self) -> bool:
        """Whether decisions depend on the request's host (some rule has ``hosts``): only
        then must an adapter fill :attr:`RequestInfo.host` (without it the engine reads the
        ``Host`` header). Decisions of such a policy are cached per host, so
        :meth:`cached` (which is given no host) never answers for it."""
        return self._needs_host

    @property
    def client_header(self) -> str | None:
        """The forwarding header (lower case) whose single value adapters may pass to
        :meth:`cached` as ``forwarded``; None when the client is always the socket peer (no
        trusted proxies, no ``hops``): then no header matters."""
        return None if self._direct else self._resolver.header

    @property
    def active(self) -> bool:
        """False in mode "off" (every answer then passes the request on untouched; adapters
        need not ask)."""
        return not self._off

    @property
    def store(self) -> Store | None:
        """The account store (``[accounts] store``), or None without ``[accounts]``: for
        tools (``geofence accounts``) and tests; requests reach it through the engine only."""
        return self._ledger.store if self._ledger is not None else None

    @property
    def mark(self) -> object:
        """What an adapter stores on a request it has answered, for :meth:`decided`."""
        return self.policy

    def decided(self, mark: object) -> bool:
        """Whether a request an adapter marked with ``mark`` needs no answer from this engine.

        Installed twice (a project and an app, a router and its app, two wrappers), the outer
        adapter answers and the inner one passes the request on untouched. Adapters with
        *different* policies each decide: both policies apply, the outer one first.
        """
        return mark is self.policy or mark == self.policy

    def _decide_inline(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> Decision:
        """Decide one request, for ``account`` when the app knows who sends it. Never raises
        because of configuration, input, databases, the account store or ``on_event``.

        With an account the account store may be called (at most once, bounded by
        ``accounts.timeout``); async apps use :meth:`adecide`, which does not block the loop.
        """
        if self._off:
            return OFF
        if account is not None and self._ledger is not None:
            return self._account_answer(request, now, account).decision
        if now is not None:
            return self._dated_entry(request, now)[1]
        # The hot path, kept to a few operations on purpose: it runs for every request.
        # Within the current window of the wall clock no rule changes phase and no database
        # check is due, so the epoch (time segment, database generation) is already known.
        # (answer() repeats these lines rather than sharing a function: a call is a
        # measurable part of a cache hit.)
        wall = _wall_clock()
        start, end, epoch = self._state
        if not start <= wall < end:
            epoch = self._tick(wall)
        # A client that is its own socket peer (no trusted proxy in between) is cached under
        # (peer, method, path): a repeated request is one dictionary lookup.
        # (peer, method, path) is the DecisionKey of a direct client (see _entry).
        entry = self._cache.get((request.peer, request.method, request.path))
        if entry is None or entry[0] is not epoch:
            return self._entry(request, None, epoch, wall=wall)[1]
        if entry[2]:  # read twice rather than stored: a repeated allow then costs nothing more
            if entry[2] is True:
                self._observer.seen(entry[1], request)
            else:
                next(entry[2])
        return entry[1]

    # With the C probe built, decide(request) is a C front that asks it first (the clock, the
    # window, the key and the entry in one call, without a Python frame); on a miss inside the
    # window it calls _entry itself, as the lines above would, and for anything else (a logged
    # hit, the window moved, other arguments) this method. Without, the same steps run inline
    # in Python (a call to a Python probe would cost more than it saves).
    if TYPE_CHECKING:
        decide = _decide_inline
    else:
        decide = front(FRONT_DECIDE, _decide_inline)

    async def adecide(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> Decision:
        """:meth:`decide` for async apps: the account store is called with its asyncio
        client. Without an account (or ``[accounts]``) it is :meth:`decide`."""
        if account is not None and self._ledger is not None and not self._off:
            return (await self._account_aanswer(request, now, account)).decision
        # decide(request) alone is the call the compiled front answers from the cache
        return self.decide(request) if now is None else self.decide(request, now)

    def _answer_probed(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> Answer:
        if now is None and account is None:
            entry = self._probe.entry(request)
            if entry is None:
                # A miss (adapters get here after cached() missed): straight to the entry,
                # without a second probe of the same key.
                if self._off:
                    return OFF_ANSWER
                wall = _wall_clock()
                start, end, epoch = self._state
                if not start <= wall < end:
                    epoch = self._tick(wall)
                # The compiled step first, as _entry would ask it, without _entry's frame.
                step = self._miss
                entry = None if step is None else step(self, request, epoch, wall)
                if entry is None:
                    entry = self._entry(request, None, epoch, wall=wall, stepped=True)
            else:
                attention = entry[2]
                if attention:
                    if attention is True:
                        self._observer.seen(entry[1], request)
                    else:
                        next(attention)
            answer = entry[3]
            if answer is None:
                return new_answer(entry[1], self._denial(entry[1], request), None)
            return answer
        return self._answer_inline(request, now, account)

    def _answer_inline(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> Answer:
        """What the adapter does with this request (see :class:`geofence.http.Answer`): pass
        it, pass it and add headers to the app's response (a warning), or send a response
        (a block or a 503). Never raises because of configuration, input or databases."""
        if self._off:
            return OFF_ANSWER
        if account is not None and self._ledger is not None:
            return self._account_answer(request, now, account)
        entry: Entry | None
        if now is not None:
            entry = self._dated_entry(request, now)
        else:
            wall = _wall_clock()
            start, end, epoch = self._state
            if not start <= wall < end:
                epoch = self._tick(wall)
            entry = self._cache.get((request.peer, request.method, request.path))
            if entry is None or entry[0] is not epoch:
                entry = self._entry(request, None, epoch, wall=wall)
            elif entry[2]:
                if entry[2] is True:
                    self._observer.seen(entry[1], request)
                else:
                    next(entry[2])
        answer = entry[3]
        if answer is None:
            return new_answer(entry[1], self._denial(entry[1], request), None)
        return answer

    _answer_probed.__doc__ = _answer_inline.__doc__
    # With the C probe built, answer(request) is a C front (as decide) that answers a quiet hit
    # and a miss inside the window (by the compiled step, or _entry) without the frame of
    # _answer_probed, which runs for every other call.
    if TYPE_CHECKING:
        answer = _answer_inline
    else:
        answer = front(FRONT_ANSWER, _answer_probed) if NATIVE_PROBE else _answer_inline

    async def aanswer(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> Answer:
        """:meth:`answer` for async apps (the account store's asyncio client)."""
        if account is not None and self._ledger is not None and not self._off:
            return await self._account_aanswer(request, now, account)
        return self.answer(request, now)

    def _cached_inline(
        self,
        peer: str | None,
        method: str,
        path: str,
        account: Account | None = None,
        forwarded: str | None = None,
    ) -> Answer | None:
        """The answer already given to this (peer, method, path), if it is still valid, passes
        the request untouched and needs no log line; None otherwise: then call :meth:`answer`.

        For adapters whose request facts are costly to assemble: a repeated allowed request
        needs neither the headers nor a :class:`RequestInfo`. Anything that must be logged,
        warned or blocked is never answered here. Nor is anything when rules depend on the
        host (:attr:`needs_host`): the cache keys of such a policy carry the host, which no
        (peer, method, path) probe here equals.

        ``forwarded``: the value of the request's :attr:`client_header`, when it has exactly
        one line of it (a WSGI environ joins several lines into one, which is the same value
        :meth:`answer` then reads). A repeated client behind a trusted proxy is then found
        here too, without the header being walked.
        """
        if self._off:
            return OFF_ANSWER
        start, end, epoch = self._state
        wall = _wall_clock()
        if not start <= wall < end:
            return None
        if forwarded is None and account is None:
            entry = self._cache.get((peer, method, path))
            if entry is not None and entry[0] is epoch:
                attention = entry[2]
                if attention is False:
                    return entry[3]
                if attention is not True:  # a counter: an allow, counted
                    next(attention)
                    return entry[3]
            return None
        if forwarded is not None and not self._direct and len(forwarded) <= MAX_LINE:
            found = self._cached_at((peer, method, path, _VIA, forwarded), account, epoch, wall)
            if found is not None:
                return found
        # The peer's own key: the peer may be the client (no trusted proxy) whatever it sent.
        return self._cached_at((peer, method, path), account, epoch, wall)

    def _cached_at(
        self, base: tuple[object, ...], account: Account | None, epoch: Epoch, wall: float
    ) -> Answer | None:
        """cached() for the key ``base`` (plus the account's home when rules read it)."""
        if account is not None and self._ledger is not None:
            if account.__class__ is not Account:
                return None  # an id string, or a hook's mistake: answer() sorts it out
            home = account.home_country if self._home else None
            entry = self._cache.get(base if home is None else (*base, home))
            if entry is None or entry[0] is not epoch:
                return None
            memo = self._ledger.memo(entry[1], account, wall)
            if memo is not None:
                self._observer.count(memo.decision)
            return memo
        entry = self._cache.get(base)
        if entry is not None and entry[0] is epoch:
            attention = entry[2]
            if attention is False:
                return entry[3]
            if attention is not True:  # a counter: an allow, counted
                next(attention)
                return entry[3]
        return None

    # With the C probe built, cached(peer, method, path) on an engine that is not off is a C
    # front that answers from the probe (None on a miss); any other call runs this method.
    if TYPE_CHECKING:
        cached = _cached_inline
    else:
        cached = front(FRONT_CACHED, _cached_inline)

    # quick(peer, method, path): what cached() answers, and more when the compiled new-client
    # step is built: on a miss it decides the client from these three alone (a usable socket
    # peer, no trusted proxy, no exemption, no overlay: see geofence/hotpath/_miss.c) and
    # answers an allow that needs no log line at once, before the adapter has built any
    # request facts; anything else it answers None, having stored what it decided, which
    # answer(request) then finds, logs and answers. For an adapter that has looked for its
    # exempt views already (an exempt view must never be decided). Without the compiled
    # step, and for any other call, it is cached().
    if TYPE_CHECKING:
        quick = _cached_inline
    else:
        quick = front(FRONT_QUICK, _cached_inline)

    # -- accounts ----------------------------------------------------------------------------

    def _account_start(
        self, request: RequestInfo, now: datetime | None, account: object
    ) -> Answer | tuple[Decision, Account, float]:
        """The answer when this process can give it at once (the account's memo, or no usable
        account); else what to settle: the request's decision by its client (cached, not
        logged), the account, and the decision's time."""
        if account.__class__ is not Account:
            account = _as_account(account)
            if account is None:
                return self.answer(request, now)
        assert isinstance(account, Account)
        home = account.home_country if self._home else None
        if now is not None:
            entry = self._dated_entry(request, now, home, quiet=True)
            at = now.timestamp()
        else:
            at = _wall_clock()
            start, end, epoch = self._state
            if not start <= at < end:
                epoch = self._tick(at)
            peer, method, path = request.peer, request.method, request.path
            key = (peer, method, path) if home is None else (peer, method, path, home)
            cached = self._cache.get(key)
            entry = (
                cached
                if cached is not None and cached[0] is epoch
                else self._entry(request, None, epoch, home, quiet=True, wall=at)
            )
        ledger = self._ledger
        assert ledger is not None
        memo = ledger.memo(entry[1], account, at)
        if memo is not None:
            self._observer.count(memo.decision)
            return memo
        return (entry[1], account, at)

    def _account_answer(
        self, request: RequestInfo, now: datetime | None, account: object
    ) -> Answer:
        step = self._account_start(request, now, account)
        if isinstance(step, Answer):
            return step
        base, checked, at = step
        assert self._ledger is not None
        decision = self._ledger.settle(base, checked, at)
        return self._account_finish(request, base, decision, checked, at)

    async def _account_aanswer(
        self, request: RequestInfo, now: datetime | None, account: object
    ) -> Answer:
        step = self._account_start(request, now, account)
        if isinstance(step, Answer):
            return step
        base, checked, at = step
        assert self._ledger is not None
        decision = await self._ledger.asettle(base, checked, at)
        return self._account_finish(request, base, decision, checked, at)

    def _account_finish(
        self, request: RequestInfo, base: Decision, decision: Decision, account: Account, at: float
    ) -> Answer:
        if decision.action != "allow":
            # The account's own reference: its support case, not only its client's.
            observer = self._observer
            ref = observer.refs.make(
                decision.client_ip, decision.rule, decision.reason, decision.account
            )
            decision = decision._replace(ref=ref)
        answer = self._answer_of(decision, request)
        if decision.action != "allow" or decision.report_rules:
            self._observer.seen(decision, request, _utc(at))
        else:
            self._observer.count(decision)
            if answer.response is None:
                assert self._ledger is not None
                self._ledger.remember(base, account, at, answer)
        return answer

    def _answer_of(self, decision: Decision, request: RequestInfo) -> Answer:
        action = decision.action
        if action == "allow" or not decision.enforced:
            return new_answer(decision, None, None)
        if action == "warn":
            return new_answer(decision, None, self._responder)
        return new_answer(decision, self._denial(decision, request), None)

    def _dated_entry(
        self, request: RequestInfo, now: datetime, home: str | None = None, *, quiet: bool = False
    ) -> Entry:
        """The entry for a request decided at a given time (tests, the CLI, replays).
        ``quiet``: not logged (an account's decision is logged once settled)."""
        moment = _micros(now)
        boundaries = self._boundaries[0]
        segment = bisect_right(boundaries, moment) if boundaries else 0
        self._poll_if_due()
        return self._entry(request, moment, (segment, self._generation), home, quiet=quiet)

    def _entry(
        self,
        request: RequestInfo,
        moment: int | None,
        epoch: Epoch,
        home: str | None = None,
        *,
        quiet: bool = False,
        wall: float = 0.0,
        stepped: bool = False,
    ) -> Entry:
        """Decide with the cache: ``epoch`` is what its entries must carry to be valid.
        ``home``: the account's home country when rules ask about it. ``quiet``: the caller
        logs (an account's decision, once settled). ``wall``: the wall clock when ``moment``
        is None (now). ``stepped``: the caller asked the compiled step already (the C
        front), which declined."""
        miss = self._miss
        if miss is not None and moment is None and home is None and not quiet and not stepped:
            # The compiled step: the whole entry of a new client in the common case, or None.
            made = miss(self, request, epoch, wall)
            if made is not None:
                return made  # type: ignore[no-any-return]
        given = moment  # a decision at a given time is reported at that time
        peer, method, path = request.peer, request.method, request.path
        key: tuple[object, ...]
        if self._direct:
            client = self._resolver.peer_client(peer)
            if client.ip is not None or peer is None:
                key = _new(_Key, (peer, method, path))
            else:  # a peer that is no address: its text may be anything, so not the key
                key = _new(_Key, ((None, client.detail), method, path))
        else:
            # Whom a trusted proxy forwards is told by the peer and the one line of the client
            # header it sends: such requests are cached under both, and found again before
            # the line is walked (and by cached(), from the raw header).
            line = self._resolver.proxied_line(peer, request.headers)
            if line is not None:
                key = (peer, method, path, _VIA, line)
                client = None
            else:
                client = self._resolver.resolve(peer, request.headers)
                if client.detail is self._peer_detail and client.ip is not None:
                    # _client_key's first case, inline: a new client's path.
                    key = _new(_Key, (peer, method, path))
                else:
                    key = self._client_key(client, peer, method, path)
                if client.detail is not self._peer_detail:
                    # A proxy not seen before (or several lines): under its line if it sent
                    # one, so that its next request and cached() find this decision.
                    line = self._resolver.single_line(request.headers)
                    if line is not None:
                        key = (peer, method, path, _VIA, line)
        host: str | None = None
        suffix: tuple[object, ...] = ()
        if self._needs_host:
            # Rules read the host: it is part of every key of this engine, as a 1-tuple (never
            # equal to a home's text), so the (peer, method, path) probes of the hot paths and
            # of cached() never find a decision made for another host.
            host = request_host(request)
            suffix = ((host,),)
        if home is not None:
            # One more member: never equal to the key of a request without that home.
            suffix = (*suffix, home)
        if suffix:
            key = (*key, *suffix)
        entry = self._cache.get(key)
        if client is None and (entry is None or entry[0] != epoch):
            # Not seen with this line: walk it. A peer that turns out to be the client (no
            # trusted proxy) has its decision under its own key, whatever the line says.
            client = self._resolver.resolve(peer, request.headers)
            if client.detail is self._peer_detail:
                key = (*self._client_key(client, peer, method, path), *suffix)
                entry = self._cache.get(key)
        if entry is not None and entry[0] == epoch:
            attention = entry[2]
            if attention and not quiet:
                if attention is True:
                    self._observer.seen(entry[1], request, _at(given))
                else:
                    next(attention)
            return entry
        assert client is not None
        segment = epoch[0]
        if moment is None:
            start, end, (current, _) = self._state
            if start + _EXACT <= wall < end - _EXACT:
                # Well inside a window no rule date falls in: every instant of it decides
                # the same, so the float clock already read will do.
                moment = int(wall * 1_000_000)
                segment = current
            else:
                # The float clock can be off within a microsecond of a rule date (or the
                # window moved since): decide with the exact time.
                moment = time.time_ns() // 1000
                boundaries = self._boundaries[0]
                if boundaries:
                    segment = bisect_right(boundaries, moment)
        decision = self._evaluate(request, moment, segment, client.ip, client.detail, home, host)
        loggable = decision.action != "allow" or bool(decision.report_rules)
        # The answer every request with this decision shares; None for an enforced block,
        # whose response depends on the request (Accept, HEAD). Inline: a new client's path.
        action = decision.action
        if action == "allow" or not decision.enforced:
            answer: Answer | None = new_answer(decision, None, None)
        elif action == "warn":
            answer = new_answer(decision, None, self._responder)
        else:
            answer = None
        attention = True
        if not loggable:
            tally = self._observer.tally
            attention = False if tally is None else tally.iterator(decision)
        entry = (epoch, decision, attention, answer)
        if (
            segment == epoch[0]
            and decision.reason != "db_error"
            and len(path) <= 1024
            and len(method) <= 32
        ):
            # Stored with the epoch read *before* the lookup: should a reload have happened
            # in between, the entry is merely stale-marked, never newer than it claims.
            bounded_put(self._cache, CACHE_SIZE, key, entry)
        if attention and not quiet:
            if attention is True:
                self._observer.seen(decision, request, _at(given))
            else:
                next(attention)
        return entry

    def _client_key(
        self, client: ClientIP, peer: str | None, method: str, path: str
    ) -> tuple[object, ...]:
        """The cache key of a request whose client was resolved (see _entry)."""
        if client.detail is self._peer_detail and client.ip is not None:
            # The peer is no trusted proxy: the client is the peer whatever the headers say,
            # so a repeated request can be found before its headers are read. Hot paths probe
            # with a plain tuple of these same three values, which hashes and compares equal
            # to this key.
            key: tuple[object, ...] = _new(_Key, (peer, method, path))
        else:
            ip_text = client.ip.text if client.ip is not None else None
            key = _new(_Key, ((ip_text, client.detail), method, path))
        return key

    def _tick(self, wall: float) -> Epoch:
        """The wall clock left the current window: find the segment, check databases if due."""
        self._poll_if_due()
        with self._state_lock:
            bounds = self._boundaries[1]
            segment = bisect_right(bounds, wall)
            start = bounds[segment - 1] if segment else float("-inf")
            end = bounds[segment] if segment < len(bounds) else float("inf")
            if self._poll_interval is not None:
                if self._poll_each:
                    end = start  # an injected clock is read on every request instead
                else:
                    end = min(end, wall + max(0.0, self._poll_at - self._clock()))
            epoch = self._epoch(segment)
            self._state = (start, end, epoch)
            self._probe.set(start, end, epoch)
            return epoch

    def _epoch(self, segment: int) -> Epoch:
        """The current epoch for ``segment``; the same object while nothing changes, so that
        cache entries compare by identity. Call with the state lock held."""
        generation = self.country_db.reloads
        if self.anonymous_db is not None:
            generation += self.anonymous_db.reloads
        if self.asn_db is not None:
            generation += self.asn_db.reloads
        if generation != self._generation:
            # What the databases said per network: a new dict, not a cleared one, so that a
            # lookup still running on the database before the reload stores into the old one.
            # And the databases' finders again: a reloading file's is its current database's.
            _, anonymous, asn, _ = self._finds
            self._finds = (
                _finder(self.country_db),
                None if anonymous is None else _finder(self.anonymous_db),
                None if asn is None else _finder(self.asn_db),
                {},
            )
        self._generation = generation
        epoch = self._state[2]
        if epoch != (segment, generation):
            epoch = (segment, generation)
            # Entries of another epoch can never be valid again (time and reloads only move
            # forward): let their memory go now rather than when the cache fills up.
            self._cache.clear()
        return epoch

    def _note_reloads(self) -> None:
        """A lookup may have reloaded a database: move the epoch on if it did."""
        generation = self.country_db.reloads
        if self.anonymous_db is not None:
            generation += self.anonymous_db.reloads
        if self.asn_db is not None:
            generation += self.asn_db.reloads
        if generation != self._generation:
            with self._state_lock:
                start, end, epoch = self._state
                epoch = self._epoch(epoch[0])
                self._state = (start, end, epoch)
                self._probe.set(start, end, epoch)

    def _poll_if_due(self) -> None:
        if self._poll_interval is not None and self._clock() >= self._poll_at:
            self._poll_databases()

    def _poll_databases(self) -> None:
        """Let reloading databases check their files (cache hits make no lookups that would),
        and every database its age (the daily stale warning of geoip.max_age)."""
        assert self._poll_interval is not None
        for db in self._databases():
            if isinstance(db, Reloading):
                db.poll()  # checks its file, and its age (geoip.max_age)
            elif db is not None:
                check_age(db)  # a database that does not reload: only its age
        # Set after the polls, whose own deadlines are now at most this: the next poll of
        # the engine is then never too early for them (which would skip a whole interval).
        self._poll_at = self._clock() + self._poll_interval
        self._note_reloads()

    def _lookup(self, ip: IP) -> Found:
        """What the databases say about ``ip``: each consulted only when a rule needs it."""
        find_country, find_anonymizers, find_asn, networks = self._finds
        if ip.version == 4:
            network, widest = ip.value >> 8, 24
        else:
            # Above every IPv4 network's key; below 2**49, so two digits of an int (the C
            # step makes those without PyLong's loops) and its own hash.
            network, widest = ip.value >> 80 | 1 << 48, 48
        known = networks.get(network)
        if known is not None:
            return known
        db: object = self.country_db  # the one asked, for the per-database log limit
        try:
            record, prefix = find_country(ip)
            anonymizers = NO_ANONYMIZERS
            if find_anonymizers is not None:
                db = self.anonymous_db
                anonymizers, length = find_anonymizers(ip)
                prefix = max(prefix, length)
            asn = None
            if find_asn is not None:
                db = self.asn_db
                number, length = find_asn(ip)
                asn = number or None  # 0: no number for this address
                prefix = max(prefix, length)
            found: Found = (record, anonymizers, asn)
            if prefix <= widest:
                bounded_put(networks, NETWORK_CACHE_SIZE, network, found)
            return found
        except DatabaseError as error:
            # The log line is rate-limited per database; the event is sent for every failed
            # lookup, so that it can be counted (geofence_db_lookup_errors_total).
            logs.log_db_error(error, db, self._clock)
            if self.events.active:
                key = (
                    "geoip.country_db"
                    if db is self.country_db
                    else "geoip.anonymous_db"
                    if db is self.anonymous_db
                    else "geoip.asn_db"
                )
                self.events.emit(failure_event(key, db, error, ip.text))
            raise

    def _evaluate(
        self,
        request: RequestInfo,
        now: int,
        segment: int,
        ip: IP | None,
        detail: str,
        home: str | None = None,
        host: str | None = None,
    ) -> Decision:
        """The decision, without the cache: what the policy says, plus who asked."""
        path = request.path
        client_ip = ip.text if ip is not None else None
        exempt_ips, exempt_paths = self._exempt
        if ip is not None and exempt_ips is not None and exempt_ips.holds(ip):
            return with_client(EXEMPT_IP, client_ip, detail, None)
        if (
            exempt_paths is not None
            and exempt_paths.match(path) is not None
            and not has_dot_segment(path)
        ):
            return with_client(EXEMPT_PATH, client_ip, detail, None)
        # What the rules say depends on the request only through its method and path, and on
        # the client only through its facts: many clients share one verdict.
        method = request.method.upper() if len(request.method) <= 32 else ""
        pretended = None if _overlay.ACTIVE is None else _overlay.ACTIVE(ip)
        if pretended is not None:
            # geofence.testing: what a test says this client is, test-client peers included.
            record, anonymizers, asn = pretended
            fallback = "default" if record.country is not None else "no_country"
            country, subdivisions = record.country, record.subdivisions
            facts = _new(
                Facts,
                (method, path, country, subdivisions, anonymizers, fallback, home, host, asn),
            )
        elif ip is None:
            facts = _new(
                Facts,
                (method, path, None, (), NO_ANONYMIZERS, "unresolved_client", home, host, None),
            )
        elif is_private(ip):
            if self.policy.allow_private:
                return with_client(PRIVATE, client_ip, detail, None)
            facts = _new(
                Facts, (method, path, None, (), NO_ANONYMIZERS, "private", home, host, None)
            )
        else:
            try:
                record, anonymizers, asn = self._lookup(ip)
            except DatabaseError as error:
                return self._db_error(ip.text, detail, error)
            if not record.found:
                fallback = "not_found"
            elif record.country is None:
                fallback = "no_country"
            else:
                fallback = "default"
            facts = _new(
                Facts,
                (
                    method,
                    path,
                    record.country,
                    record.subdivisions,
                    anonymizers,
                    fallback,
                    home,
                    host,
                    asn,
                ),
            )
        key = (segment, facts)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdict(facts, now)
            if len(path) <= 1024:
                bounded_put(self._verdicts, VERDICT_CACHE_SIZE, key, verdict)
        if verdict.action == "allow":
            return with_client(verdict, client_ip, detail, None)
        ref = self._observer.refs.make(client_ip, verdict.rule, verdict.reason)
        return with_client(verdict, client_ip, detail, ref)

    def _db_error(self, ip: str, detail: str, error: DatabaseError) -> Decision:
        if self.policy.on_error == "block":
            return self._final(
                Decision(
                    action="block",
                    enforced=True,
                    reason="db_error",
                    client_ip=ip,
                    status=503,
                    client_detail=detail,
                    ref=self._observer.refs.make(ip, None, "db_error"),
                )
            )
        return Decision(
            action="allow", enforced=True, reason="db_error", client_ip=ip, client_detail=detail
        )

    def _verdict(self, facts: Facts, now: int) -> Decision:
        """The decision without its client fields: what the policy says about these facts."""
        country, subdivisions, anonymizers = facts.country, facts.subdivisions, facts.anonymizers
        anon = tuple(sorted(anonymizers)) if anonymizers else ()
        asn = facts.asn
        dry_run: Decision | None = None
        dry_names: list[str] = []
        # Decisions are built from their fields in order (_VERDICT_FIELDS): keywords through
        # the named tuple's __new__ cost four times as much, and each new set of facts (the
        # first client of a country) pays for one.
        for rule in self._rules:
            # matches() first: it turns most facts away at once (Rule.countries), and a rule
            # that does not match needs no schedule.
            if not rule.matches(facts):
                continue
            action = rule.action_at(now)
            if action is None:
                continue
            status = rule.status if action == "block" else None
            decision: Decision = _new(
                Decision,
                (action, True, "rule", rule.name, country, subdivisions, anon, asn, status,
                 rule.warn_from, rule.enforce_from, rule.phase_at(now), (), None, None, "", None),
            )  # fmt: skip
            if rule.report:
                # A dry run never changes the outcome: note it and keep looking.
                if action != "allow":
                    dry_names.append(rule.name)
                    dry_run = dry_run or decision
                continue
            return self._final(decision, dry_run, dry_names)
        default = self.policy.default
        status = 451 if default == "block" else None
        decision = _new(
            Decision,
            (default, True, facts.fallback, None, country, subdivisions, anon, asn, status,
             None, None, "", (), None, None, "", None),
        )  # fmt: skip
        if dry_run is None and self.policy.mode != "report":
            return decision  # nothing for _final to do
        return self._final(decision, dry_run, dry_names)

    def _final(
        self,
        decision: Decision,
        dry_run: Decision | None = None,
        dry_names: list[str] | None = None,
    ) -> Decision:
        """Apply report modes: the whole policy's, and the dry runs of report-mode rules."""
        if dry_run is not None and decision.action == "allow":
            # The request goes through anyway; what it shows is what the dry run would do.
            decision = dry_run._replace(enforced=False)
        if dry_names:
            decision = decision._replace(report_rules=tuple(dry_names))
        if self.policy.mode == "report" and decision.action != "allow":
            decision = decision._replace(enforced=False)
        return decision

    def explain(
        self,
        request: RequestInfo,
        now: datetime | None = None,
        account: Account | None = None,
    ) -> list[tuple[str, str]]:
        """Why each rule tried before the deciding one did not decide (every rule when none
        did), as (rule name, reason) pairs; empty when no rule was consulted (an exemption,
        an allowed private client, a database error). For ``geofence check``; not a hot path.
        """
        decision = self.decide(request, now, account)
        consulted = decision.reason in _CONSULTS_RULES or (
            decision.reason == "private" and not self.policy.allow_private
        )
        if not consulted:
            return []
        moment = _micros(now) if now is not None else time.time_ns() // 1000
        method = request.method.upper() if len(request.method) <= 32 else ""
        facts = Facts(
            method,
            request.path,
            decision.country,
            decision.subdivisions,
            frozenset(decision.anonymizers),
            decision.reason,
            account.home_country if account is not None and self._home else None,
            request_host(request) if self._needs_host else None,
            decision.asn,
        )
        reasons: list[tuple[str, str]] = []
        for rule in self._rules:
            if rule.name == decision.rule and not rule.report:
                break
            failed = rule.failed_condition(facts)
            if rule.action_at(moment) is None:
                why = f"not in force yet (from {rule.warn_from or rule.enforce_from})"
            elif failed is not None:
                why = failed.why_not(facts)
            else:
                why = "matched, but is in report mode (a dry run)"
            reasons.append((rule.name, why))
        return reasons

    # -- answers -----------------------------------------------------------------------------

    def _denial(self, decision: Decision, request: RequestInfo) -> Response:
        """The response to an enforced block (a 451, 403 or 503) for this request."""
        accept: list[str] = []
        languages: list[str] = []
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == "accept":
                accept.append(value)
            elif lowered == "accept-language":
                languages.append(value)
        response = self._responder.denial(
            decision, ", ".join(accept) or None, ", ".join(languages) or None
        )
        if request.method.upper() == "HEAD":
            # Same headers (Content-Length included) as the GET answer, no body (RFC 9110 9.3.2).
            response = new_response(
                response.status,
                response.headers,
                b"",
                response.html,
                response.context,
                response.page,
            )
        return response


MAX_HOST = 255  # a longer Host is no host name: it matches no `hosts` rule


def request_host(request: RequestInfo) -> str:
    """The request's host as `hosts` rules see it: ``RequestInfo.host``, else the ``Host``
    header; lower-case, without the port, an IPv6 literal without brackets (compressed), and
    without a trailing dot. "" when there is none (then no `hosts` rule matches)."""
    raw = request.host
    if not raw:
        for name, value in request.headers:
            if name.lower() == "host":
                raw = value
                break
    return normalize_host(raw) if raw else ""


def normalize_host(raw: str) -> str:
    host = raw.strip().lower()
    if len(host) > MAX_HOST:
        return ""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return ""  # "[::1]x": not a host
        return _compressed(host[1:end])
    colons = host.count(":")
    if colons == 1:
        host = host.partition(":")[0]
    elif colons > 1:
        return _compressed(host)  # a bare IPv6 literal (no port can be told apart)
    return host[:-1] if host.endswith(".") else host


def _compressed(text: str) -> str:
    try:
        return IPv6Address(text).compressed
    except ValueError:
        return ""


def _finder(db: Any) -> Finder:
    """How the engine asks ``db`` about an address (see Engine._finds): a MaxMind file's
    ``finder()`` (in C for the common case when built; for a reloading file its current
    database's, so it is asked again after each reload, in _epoch), else ``find_prefix``.
    (Not an isinstance() test: that would import the MaxMind modules for the default engine.)"""
    finder = getattr(db, "finder", None)
    if finder is not None:
        found: Finder = finder()
        return found
    return db.find_prefix  # type: ignore[no-any-return]


def _as_account(account: object) -> Account | None:
    """What an app passed as its account: an Account, or a plain id string (a convenience);
    anything else is a bug in the app's hook, logged, and the request is decided without."""
    if isinstance(account, Account):
        return account
    if isinstance(account, str) and account:
        return Account(account)
    logs.log_bad_account(account)
    return None
