"""The decision engine: request facts in, :class:`Decision` out. All policy lives here."""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from . import logs
from .addresses import IP, NetworkSet, is_private
from .clientip import ClientIP, ClientResolver
from .config import load_policy
from .databases import AnonymousDB, CountryDB, open_anonymous_db, open_country_db
from .errors import ConfigError, DatabaseError
from .globs import compile_globs, has_dot_segment
from .model import Decision, RequestInfo
from .policy import Policy
from .records import GeoRecord
from .reloading import Reloading
from .responses import Responder, Response
from .rules import Rule, micros

OFF = Decision(action="allow", enforced=False, reason="off")
NO_ANONYMIZERS: frozenset[str] = frozenset()
_wall_clock = time.time  # bound once: the hot path reads it on every request
CACHE_SIZE = 65_536


def _micros(now: datetime) -> int:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (e.g. datetime.now(timezone.utc))")
    return micros(now)


class Engine:
    """Built once at startup from a validated :class:`Policy`; ``decide`` is thread-safe."""

    def __init__(self, policy: Policy, *, clock: Callable[[], float] | None = None) -> None:
        self.policy = policy
        clock = clock or time.monotonic
        self._off = policy.mode == "off"
        self._report = policy.mode == "report"
        self._rules = tuple(Rule.compile(r) for r in policy.rules)
        self._resolver = ClientResolver(policy.client_ip)
        self._exempt_ips = NetworkSet(policy.exempt_ips)
        self._exempt_paths = compile_globs(policy.exempt_paths)
        self._responder = Responder(policy.message, policy.info_url)
        self.country_db: CountryDB = open_country_db(policy.geoip, clock)
        self.anonymous_db: AnonymousDB | None = open_anonymous_db(policy.geoip, clock)
        # The anonymous-IP database is only consulted when some rule asks about network types.
        self._needs_anonymous = any(r.anonymizers for r in self._rules)
        self._check_database_fits()
        # Every instant at which some rule changes phase; between two of them nothing does.
        self._boundaries = tuple(
            sorted({t for r in self._rules for t in (r.starts, r.enforces) if t is not None})
        )
        self._peer_only = not policy.client_ip.trusted_proxies and policy.client_ip.hops is None
        self._boundary_seconds = tuple(b / 1_000_000 for b in self._boundaries)
        # key -> (time segment, database generation, decision, whether it is logged)
        self._cache: dict[tuple[str | None, ...], tuple[int, int, Decision, bool]] = {}
        self._clock = clock
        reloading = any(isinstance(db, Reloading) for db in (self.country_db, self.anonymous_db))
        self._poll_interval = policy.geoip.reload_interval if reloading else None
        self._poll_at = clock() + policy.geoip.reload_interval if reloading else None

    @classmethod
    def from_config(
        cls,
        obj: Mapping[str, Any] | str | os.PathLike[str] | Policy,
        *,
        clock: Callable[[], float] | None = None,
    ) -> Engine:
        """Build an engine from a dict, a ``.toml`` / ``.json`` path, or a Policy.

        ``clock`` is the monotonic clock used to schedule database reload checks (tests
        inject one). Raises :class:`ConfigError` for any problem with the config or databases.
        """
        policy = obj if isinstance(obj, Policy) else load_policy(obj)
        return cls(policy, clock=clock)

    def _check_database_fits(self) -> None:
        if self.country_db.has_subdivisions:
            return
        for index, rule in enumerate(self._rules):
            if rule.uses_subdivisions:
                codes = sorted(
                    {c for r in (rule.regions, rule.except_regions) if r for c in r.subdivisions}
                )
                raise ConfigError(
                    f"rules[{index}].regions",
                    f"subdivision code {codes[0]!r} needs a database with subdivisions, but "
                    f"{self.country_db.description} has none; set geoip.country_db to a "
                    "GeoIP2/GeoLite2 City or Enterprise database",
                )

    # -- per request -------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """False in mode "off": adapters then pass every request straight through."""
        return not self._off

    def decide(self, request: RequestInfo, now: datetime | None = None) -> Decision:
        """Decide one request. Never raises because of configuration, input or databases."""
        if self._off:
            return OFF
        # One function on the hot path, on purpose: every call costs here.
        moment: int | None
        if now is not None:
            moment = _micros(now)
            segment = bisect_right(self._boundaries, moment) if self._boundaries else 0
        elif self._boundaries:
            # The float clock is the cheapest there is; a segment found with it can be off
            # only within a microsecond of a rule date. A miss computes exactly (below).
            moment = None
            segment = bisect_right(self._boundary_seconds, _wall_clock())
        else:
            moment = segment = 0  # no rule has dates: the time cannot change any decision
        if self._poll_at is not None and self._clock() >= self._poll_at:
            self._poll_databases()
        # Decisions are cached per (client, method, path). An entry stays valid within one
        # segment of the time line cut at every rule date, and until a database is reloaded
        # (reload counters only grow, so their sum changes whenever either database does).
        # Without trusted proxies the client is a function of the peer alone, so the peer is
        # the key and a repeated request skips client resolution too.
        generation = self.country_db.reloads
        if self.anonymous_db is not None:
            generation += self.anonymous_db.reloads
        client: ClientIP | None = None
        key: tuple[str | None, ...]
        if self._peer_only:
            key = (request.peer, request.method, request.path)
        else:
            client = self._resolver.resolve(request.peer, request.headers)
            ip_text = client.ip.text if client.ip is not None else None
            key = (ip_text, client.detail, request.method, request.path)
        entry = self._cache.get(key)
        if entry is not None and entry[0] == segment and entry[1] == generation:
            decision = entry[2]
            if entry[3]:
                logs.log_decision(decision, request)
            return decision
        # A miss: decide for real, then remember.
        if client is None:
            client = self._resolver.resolve(request.peer, request.headers)
        if moment is None:
            moment = time.time_ns() // 1000
            segment = bisect_right(self._boundaries, moment)
        decision = self._evaluate(request, moment, client.ip, client.detail)
        loggable = decision.action != "allow" or bool(decision.report_rules)
        if (
            decision.reason != "db_error"
            and len(request.path) <= 1024
            and len(request.method) <= 32
        ):
            # Bounded: a flood of distinct clients or paths empties it, it never grows.
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (segment, generation, decision, loggable)
        if loggable:
            logs.log_decision(decision, request)
        return decision

    def _poll_databases(self) -> None:
        """Let reloading databases check their files: cache hits make no lookups that would."""
        assert self._poll_at is not None and self._poll_interval is not None
        self._poll_at = self._clock() + self._poll_interval
        for db in (self.country_db, self.anonymous_db):
            if isinstance(db, Reloading):
                db.poll()

    def _lookup(self, ip: str) -> tuple[GeoRecord, frozenset[str]]:
        record = self.country_db.lookup(ip)
        if self._needs_anonymous and self.anonymous_db is not None:
            return record, self.anonymous_db.lookup(ip)
        return record, NO_ANONYMIZERS

    def _evaluate(self, request: RequestInfo, now: int, ip: IP | None, detail: str) -> Decision:
        """The decision, without the cache."""
        path = request.path
        if ip is not None and ip in self._exempt_ips:
            return Decision("allow", True, "exempt_ip", client_ip=ip.text, client_detail=detail)
        if (
            self._exempt_paths is not None
            and self._exempt_paths.match(path) is not None
            and not has_dot_segment(path)
        ):
            client_ip = ip.text if ip is not None else None
            return Decision("allow", True, "exempt_path", client_ip=client_ip, client_detail=detail)
        if ip is None:
            return self._apply_rules(
                request, now, None, None, (), NO_ANONYMIZERS, "unresolved_client", detail
            )
        if is_private(ip):
            if self.policy.allow_private:
                decision = Decision(
                    "allow", True, "private", client_ip=ip.text, client_detail=detail
                )
            else:
                decision = self._apply_rules(
                    request, now, ip, None, (), NO_ANONYMIZERS, "private", detail
                )
            return decision
        try:
            record, anonymizers = self._lookup(ip.text)
        except DatabaseError as error:
            return self._db_error(ip.text, detail, error)
        if not record.found:
            fallback = "not_found"
        elif record.country is None:
            fallback = "no_country"
        else:
            fallback = "default"
        return self._apply_rules(
            request, now, ip, record.country, record.subdivisions, anonymizers, fallback, detail
        )

    def _db_error(self, ip: str, detail: str, error: DatabaseError) -> Decision:
        logs.log_db_error(error)
        if self.policy.on_error == "block":
            return self._final(
                Decision("block", True, "db_error", client_ip=ip, status=503, client_detail=detail)
            )
        return Decision("allow", True, "db_error", client_ip=ip, client_detail=detail)

    def _apply_rules(
        self,
        request: RequestInfo,
        now: int,
        ip: IP | None,
        country: str | None,
        subdivisions: tuple[str, ...],
        anonymizers: frozenset[str],
        fallback: str,
        detail: str,
    ) -> Decision:
        # An absurdly long method matches no rule's methods; don't upper-case 100 KB per request.
        method = request.method.upper() if len(request.method) <= 32 else ""
        client_ip = ip.text if ip is not None else None
        anon = tuple(sorted(anonymizers)) if anonymizers else ()
        dry_run: Decision | None = None
        dry_names: list[str] = []
        for rule in self._rules:
            action = rule.action_at(now)
            if action is None or not rule.matches_request(request.path, method):
                continue
            if not rule.matches_client(country, subdivisions, anonymizers):
                continue
            decision = Decision(
                action,
                True,
                "rule",
                rule=rule.name,
                client_ip=client_ip,
                country=country,
                subdivisions=subdivisions,
                anonymizers=anon,
                status=rule.status,
                warn_from=rule.warn_from,
                enforce_from=rule.enforce_from,
                client_detail=detail,
                phase=rule.phase_at(now),
            )
            if rule.report:
                # A dry run never changes the outcome: note it and keep looking.
                if action != "allow":
                    dry_names.append(rule.name)
                    dry_run = dry_run or decision
                continue
            return self._final(decision, dry_run, dry_names)
        default = Decision(
            self.policy.default,
            True,
            fallback,
            client_ip=client_ip,
            country=country,
            subdivisions=subdivisions,
            anonymizers=anon,
            client_detail=detail,
        )
        return self._final(default, dry_run, dry_names)

    def _final(
        self,
        decision: Decision,
        dry_run: Decision | None = None,
        dry_names: list[str] | None = None,
    ) -> Decision:
        """Apply report modes: the whole policy's, and the dry runs of report-mode rules."""
        if dry_run is not None and decision.action == "allow":
            # The request goes through anyway; what it shows is what the dry run would do.
            decision = replace(dry_run, enforced=False)
        if dry_names:
            decision = replace(decision, report_rules=tuple(dry_names))
        if self._report and decision.action != "allow":
            decision = replace(decision, enforced=False)
        return decision

    # -- answers -----------------------------------------------------------------------------

    def denial(self, decision: Decision, request: RequestInfo) -> Response | None:
        """The response to send instead of calling the app, or None to call the app."""
        if decision.action != "block" or not decision.enforced:
            return None
        accept = ", ".join(v for k, v in request.headers if k.lower() == "accept") or None
        response = self._responder.denial(decision, accept)
        if request.method.upper() == "HEAD":
            # Same headers (Content-Length included) as the GET answer, no body (RFC 9110 9.3.2).
            response = replace(response, body=b"")
        return response

    def response_headers(
        self, decision: Decision, get: Callable[[str], str | None]
    ) -> list[tuple[str, str]]:
        """Headers to set on the app's response (warn decisions); ``get`` reads current ones."""
        if decision.action != "warn" or not decision.enforced:
            return []
        return self._responder.warn_headers(decision, get)
