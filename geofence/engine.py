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
from .responses import Responder, Response
from .rules import Rule, micros

OFF = Decision(action="allow", enforced=False, reason="off")
NO_ANONYMIZERS: frozenset[str] = frozenset()
CACHE_SIZE = 65_536


def _micros(now: datetime | None) -> int:
    if now is None:
        return time.time_ns() // 1000
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
        self._cache: dict[
            tuple[str | None, ...],
            tuple[int, GeoRecord | None, frozenset[str] | None, Decision],
        ] = {}

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
        decision = self._decide(request, _micros(now))
        if decision.action != "allow" or decision.report_rules:
            logs.log_decision(decision, request)
        return decision

    def _decide(self, request: RequestInfo, now: int) -> Decision:
        # Decisions are cached per (client, method, path). An entry stays valid within one
        # segment of the time line cut at every rule date, and while the database answers with
        # the very same record objects (its cache is emptied on reload, so a reload
        # invalidates us too). Without trusted proxies the client is a function of the peer
        # alone, so the peer is the key and a repeated request skips resolution entirely.
        segment = bisect_right(self._boundaries, now)
        client: ClientIP | None = None
        key: tuple[str | None, ...]
        if self._peer_only:
            key = (request.peer, request.method, request.path)
        else:
            client = self._resolver.resolve(request.peer, request.headers)
            ip_text = client.ip.text if client.ip is not None else None
            key = (ip_text, client.detail, request.method, request.path)
        entry = self._cache.get(key)
        if entry is not None and entry[0] == segment:
            cached = entry[3]
            if entry[1] is None or cached.client_ip is None:
                return cached
            try:
                record, anonymizers = self._lookup(cached.client_ip)
            except DatabaseError as error:
                return self._db_error(cached.client_ip, cached.client_detail, error)
            if record is entry[1] and anonymizers is entry[2]:
                return cached
        if client is None:
            client = self._resolver.resolve(request.peer, request.headers)
        decision, looked_up, flags = self._evaluate(request, now, client.ip, client.detail)
        if (
            decision.reason != "db_error"
            and len(request.path) <= 1024
            and len(request.method) <= 32
        ):
            # Bounded: a flood of distinct clients or paths empties the cache, it never grows.
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (segment, looked_up, flags, decision)
        return decision

    def _lookup(self, ip: str) -> tuple[GeoRecord, frozenset[str]]:
        record = self.country_db.lookup(ip)
        if self._needs_anonymous and self.anonymous_db is not None:
            return record, self.anonymous_db.lookup(ip)
        return record, NO_ANONYMIZERS

    def _evaluate(
        self, request: RequestInfo, now: int, ip: IP | None, detail: str
    ) -> tuple[Decision, GeoRecord | None, frozenset[str] | None]:
        """The uncached decision, with the lookup answers it depended on (None: none)."""
        path = request.path
        if ip is not None and ip in self._exempt_ips:
            decision = Decision("allow", True, "exempt_ip", client_ip=ip.text, client_detail=detail)
            return decision, None, None
        if (
            self._exempt_paths is not None
            and self._exempt_paths.match(path) is not None
            and not has_dot_segment(path)
        ):
            client_ip = ip.text if ip is not None else None
            decision = Decision(
                "allow", True, "exempt_path", client_ip=client_ip, client_detail=detail
            )
            return decision, None, None
        if ip is None:
            decision = self._apply_rules(
                request, now, None, None, (), NO_ANONYMIZERS, "unresolved_client", detail
            )
            return decision, None, None
        if is_private(ip):
            if self.policy.allow_private:
                decision = Decision(
                    "allow", True, "private", client_ip=ip.text, client_detail=detail
                )
            else:
                decision = self._apply_rules(
                    request, now, ip, None, (), NO_ANONYMIZERS, "private", detail
                )
            return decision, None, None
        try:
            record, anonymizers = self._lookup(ip.text)
        except DatabaseError as error:
            return self._db_error(ip.text, detail, error), None, None
        if not record.found:
            fallback = "not_found"
        elif record.country is None:
            fallback = "no_country"
        else:
            fallback = "default"
        decision = self._apply_rules(
            request, now, ip, record.country, record.subdivisions, anonymizers, fallback, detail
        )
        return decision, record, anonymizers

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
        anon = tuple(sorted(anonymizers))
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
