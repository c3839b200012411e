"""The edge form of a policy: what every export target renders, and what an edge that renders
it exactly would decide.

:func:`plan` turns a validated :class:`~geofence.Policy` into an :class:`EdgePolicy` at one
instant (``at``): each dated rule in the phase it has then (a rule not started yet is left
out, one in its grace window is a ``warn`` rule, an enforced one has its own action), with
``@groups`` expanded, ``GET`` bringing ``HEAD`` as in the engine, and the policy-wide parts
(exemptions, private clients, the client address, the block answer) in edge-neutral terms.
Nothing here knows a target: what one target cannot express is that target's
:class:`~geofence.export.Loss`; what *no* edge can see (accounts) is decided here, once.

:func:`decide` is the reference interpreter: the decision of an edge that implements an
``EdgePolicy`` exactly, given what the edge knows about a request (:class:`EdgeFacts`). The
differential tests hold it against :meth:`geofence.Engine.decide` on a generated scenario
table, so that "does the export decide what the engine decides?" is answered once for the
translation; each target's tests then only show that its rendering decides like :func:`decide`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Literal, NamedTuple

from geofence._model import Action
from geofence.clientip._addresses import PRIVATE_TABLE, NetworkSet, is_private, parse_ip
from geofence.config._loader import load_policy
from geofence.config._policy import Policy, RulePolicy
from geofence.export._errors import ExportError, Loss
from geofence.http._httpdate import imf_fixdate, sf_date
from geofence.http._responses import BLOCK_CODE, BLOCK_TYPE, header_uri
from geofence.rules._conditions import host_glob_regex
from geofence.rules._globs import compile_globs, has_dot_segment

ExportMode = Literal["report", "enforce"]
Phase = Literal["always", "grace", "enforced"]
EXPORT_MODES: tuple[ExportMode, ...] = ("report", "enforce")


@dataclass(frozen=True)
class EdgeMatch:
    """What one rule tests, in edge-neutral terms. An empty field places no constraint,
    except that the four region fields together are one condition (:attr:`has_regions`)."""

    countries: frozenset[str] = frozenset()  # ISO 3166-1 alpha-2; HK and MO are not CN
    subdivisions: frozenset[str] = frozenset()  # ISO 3166-2, "UA-43": any level of the record
    any_country: bool = False  # "*": any client with a known country
    unknown: bool = False  # "unknown": no country (not found, no country, unresolved)
    # except_regions, subtracted: a client covered by these never matches the rule.
    except_countries: frozenset[str] = frozenset()
    except_subdivisions: frozenset[str] = frozenset()
    except_any_country: bool = False
    except_unknown: bool = False
    paths: tuple[str, ...] = ()  # policy globs (see geofence.export.path_regex)
    # Upper-case, as the engine matches them: a rule about GET also covers HEAD.
    methods: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()  # lower-case host globs, "*" = one or more whole labels
    # Conditions only some edges can test (a target that cannot reports a Loss).
    anonymizers: frozenset[str] = frozenset()  # "vpn", "tor", ... (geoip.anonymous_db)
    asns: frozenset[int] = frozenset()  # autonomous system numbers (geoip.asn_db)

    @property
    def has_regions(self) -> bool:
        """Whether ``regions`` constrains the client (otherwise every region matches)."""
        return bool(self.countries or self.subdivisions or self.any_country or self.unknown)

    @property
    def has_except(self) -> bool:
        return bool(
            self.except_countries
            or self.except_subdivisions
            or self.except_any_country
            or self.except_unknown
        )

    def covers(self, country: str | None, subdivisions: tuple[str, ...]) -> bool:
        """Whether ``regions`` covers the client (True when it places no constraint)."""
        if not self.has_regions:
            return True
        return _covers(
            country, subdivisions, self.countries, self.subdivisions, self.any_country, self.unknown
        )

    def excepts(self, country: str | None, subdivisions: tuple[str, ...]) -> bool:
        """Whether ``except_regions`` takes the client out of the rule."""
        return _covers(
            country,
            subdivisions,
            self.except_countries,
            self.except_subdivisions,
            self.except_any_country,
            self.except_unknown,
        )

    @property
    def every_client(self) -> bool:
        """Whether the rule's client conditions hold for (practically) every client: no region
        constraint, or every known country, with nothing excepted and no network condition."""
        regions_all = not self.has_regions or self.any_country
        return regions_all and not self.has_except and not self.anonymizers and not self.asns


def _covers(
    country: str | None,
    subdivisions: tuple[str, ...],
    countries: frozenset[str],
    codes: frozenset[str],
    any_country: bool,
    unknown: bool,
) -> bool:
    if country is None:
        return unknown
    if any_country or country in countries:
        return True
    return any(s in codes for s in subdivisions)


@dataclass(frozen=True)
class EdgeRule:
    """One exported rule: the geofence rule ``name`` in its phase at :attr:`EdgePolicy.at`."""

    name: str  # the geofence rule's name: every exported rule carries it
    key: str  # "rules[2]", where it is in the policy
    action: Action  # its action at `at`: a block rule in its grace window is "warn"
    match: EdgeMatch
    phase: Phase  # "always" (no dates), "grace" or "enforced"
    status: int = 451  # of a block: 451 or 403
    # A rule in report mode in the policy: it logs (Cloudflare "log", AWS "Count") when it
    # matches and never decides; the rules after it are still tried.
    dry_run: bool = False
    warn_from: datetime | None = None  # Deprecation of a warning
    enforce_from: datetime | None = None  # Sunset of a warning; when the block starts
    # What a block by this rule answers (its message, code, info_url over the policy's);
    # None: EdgePolicy.answer. Read it through EdgePolicy.answer_of(rule).
    answer: BlockAnswer | None = None


@dataclass(frozen=True)
class BlockAnswer:
    """What a block answers (DESIGN "HTTP behaviour"); the JSON form is what an edge sends."""

    message: str
    code: str = BLOCK_CODE
    type: str = BLOCK_TYPE
    info_url: str | None = None  # as written; header_uri() form in link()

    def json_body(self, ref: str | None = None) -> str:
        """The JSON body, as the engine's JSON answer has it. The engine's ``ref`` (its log
        line's reference) is the edge's own when given (e.g. nginx's request id), and left
        out otherwise."""
        error: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "type": self.type,
            "param": None,
        }
        if ref is not None:
            error["ref"] = ref
        return json.dumps({"error": error}, ensure_ascii=False) + "\n"

    def link(self, rel: str) -> str | None:
        """The ``Link`` header value: rel "blocked-by" on a block, "sunset" on a warning."""
        return f'<{header_uri(self.info_url)}>; rel="{rel}"' if self.info_url else None


@dataclass(frozen=True)
class ClientAddress:
    """How the app finds the client address (``[client_ip]``): an edge in front of the app
    (nginx) must find the same one; a CDN that is the first hop sees the client itself."""

    header: str = "x-forwarded-for"  # lower-case; a name of the forwarding-header table
    trusted_proxies: tuple[str, ...] = ()  # CIDR texts
    hops: int | None = None  # never with trusted_proxies


@dataclass(frozen=True)
class EdgePolicy:
    """A policy as an edge applies it at one instant. Rules are in order; the first that
    matches (and is no dry run) decides; an "allow" rule stops the later ones."""

    rules: tuple[EdgeRule, ...]
    default: Literal["allow", "block"]
    at: datetime  # the instant the rules' phases were taken at
    mode: ExportMode  # "report": nothing blocks or changes at the edge; decisions are logged
    default_status: int = 451  # a block by `default`
    exempt_ips: tuple[str, ...] = ()  # CIDR texts, checked first
    exempt_paths: tuple[str, ...] = ()  # globs; a path with . or .. segments is never exempt
    allow_private: bool = True
    # The clients that are "private" (allowed before any rule with allow_private), CIDR texts.
    private_networks: tuple[str, ...] = tuple(cidr for cidr, _ in PRIVATE_TABLE)
    client: ClientAddress = field(default_factory=ClientAddress)
    country_db: str | None = None  # the policy's database file; None = embedded default
    anonymous_db: str | None = None
    asn_db: str | None = None
    reload_interval: float = 60.0  # seconds between checks for a replaced file; 0 = never
    answer: BlockAnswer = field(default_factory=lambda: BlockAnswer(""))
    # The next instant after `at` at which some rule changes phase: the export is valid
    # until then and must be made again (None: never).
    valid_until: datetime | None = None
    # What no edge can express exactly (accounts); each target adds its own.
    losses: tuple[Loss, ...] = ()
    # What was left out without changing any edge decision, for the output's comments.
    notes: tuple[str, ...] = ()

    def rule(self, name: str) -> EdgeRule:
        return next(r for r in self.rules if r.name == name)

    def answer_of(self, rule: EdgeRule | None) -> BlockAnswer:
        """What a block by ``rule`` (None: by ``default``) answers, and whose info_url a
        warning's Link names."""
        return rule.answer if rule is not None and rule.answer is not None else self.answer


def warn_headers(rule: EdgeRule, answer: BlockAnswer) -> tuple[tuple[str, str], ...]:
    """The headers a warning adds (``Cache-Control: private`` is merged into the app's)."""
    headers: list[tuple[str, str]] = []
    if rule.enforce_from is not None:
        headers.append(("Sunset", imf_fixdate(rule.enforce_from)))
    if rule.warn_from is not None:
        headers.append(("Deprecation", sf_date(rule.warn_from)))
    link = answer.link("sunset")
    if link is not None:
        headers.append(("Link", link))
    headers.append(("Cache-Control", "private"))
    return tuple(headers)


def path_regex(globs: tuple[str, ...] | list[str]) -> str:
    """The policy's path globs as one anchored regular expression (``(?s)^(?:...)$``), in the
    syntax Python, PCRE (nginx) and RE2 / Rust regex (Cloudflare) share; "" for no globs.

    ``(?s)``: ``*`` matches any run of characters, a decoded newline included. In PCRE and
    Python ``$`` also matches before a final newline (RE2 and Rust: only at the end), so a
    path ending in a decoded newline can match there one character early; Python callers use
    ``re.fullmatch``."""
    pattern = compile_globs(globs)
    if pattern is None:
        return ""
    body = pattern.pattern.removesuffix(r"\Z")
    return f"(?s)^{body}$"


def host_regex(globs: tuple[str, ...] | list[str]) -> str:
    """The policy's host globs as one anchored, case-sensitive regular expression over the
    lower-case host; "" for no globs."""
    if not globs:
        return ""
    return "^(?:" + "|".join(host_glob_regex(g) for g in globs) + ")$"


# -- plan --------------------------------------------------------------------------------------


def plan(
    policy: Policy | Mapping[str, Any] | str | os.PathLike[str],
    *,
    at: datetime | None = None,
    mode: ExportMode = "report",
) -> EdgePolicy:
    """The policy as an edge applies it at ``at`` (default: now) in ``mode``.

    Raises :class:`~geofence.ConfigError` for a bad policy, :class:`ExportError` for a policy
    no edge may run: mode "off", an export in "enforce" of a policy in "report", a block rule
    that matches every client.
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if mode not in EXPORT_MODES:
        raise ExportError(None, f"mode {mode!r}: expected 'report' or 'enforce'")
    if at is None:
        at = datetime.now(timezone.utc)
    elif at.tzinfo is None or at.utcoffset() is None:
        raise ExportError(None, "at must be an aware datetime (with a zone)")
    if policy.mode == "off":
        raise ExportError(
            None,
            'the policy\'s mode is "off" (it decides nothing); set mode to "report" or '
            '"enforce" to export it',
        )
    if policy.mode == "report" and mode == "enforce":
        raise ExportError(
            None,
            'the policy\'s mode is "report": the app only logs, so an edge that enforces would '
            "block what the app lets through; export in report mode or set the policy's mode "
            'to "enforce"',
        )
    rules: list[EdgeRule] = []
    losses: list[Loss] = []
    notes: list[str] = []
    for index, rule in enumerate(policy.rules):
        key = f"rules[{index}]"
        match = _match(rule)
        by_account = bool(rule.home_regions or rule.home_mismatch)
        if rule.action == "block" and match.every_client and not by_account:
            raise ExportError(
                rule.name,
                f"{key} is a block rule that matches every client (no regions, or '*', with "
                "nothing excepted): refused, an edge must never block everyone by accident; "
                "list the regions it blocks",
            )
        action, phase = _phase(rule, at)
        if action is None:
            start = rule.warn_from or rule.enforce_from
            assert start is not None
            notes.append(f"rule {rule.name!r} is left out: it starts at {start.isoformat()}")
            continue
        if by_account:
            # Without an account the engine never matches such a rule, and an edge sees no
            # account: leaving it out decides what the engine decides for the edge's requests.
            # An "allow" for some accounts is the one case where the edge then blocks
            # requests that the app lets through.
            if action == "allow" and rule.mode != "report":
                losses.append(
                    Loss(
                        rule.name,
                        "it allows by the account's home country, which no edge can see; the "
                        "edge would block those accounts' requests that the app allows",
                    )
                )
            else:
                notes.append(
                    f"rule {rule.name!r} is left out: it matches on the account's home "
                    "country, which only the app sees (the app still applies it)"
                )
            continue
        if rule.account_grace is not None and action == "block" and rule.mode != "report":
            losses.append(
                Loss(
                    rule.name,
                    "it has account_grace: the app warns each account until its own date, the "
                    "edge (which sees no account) would block it from enforce_from",
                )
            )
        rules.append(
            EdgeRule(
                name=rule.name,
                key=key,
                action=action,
                match=match,
                phase=phase,
                status=rule.status,
                dry_run=rule.mode == "report",
                warn_from=rule.warn_from,
                enforce_from=rule.enforce_from,
                answer=_rule_answer(rule, policy),
            )
        )
    changes = sorted(
        t for r in policy.rules for t in (r.warn_from, r.enforce_from) if t is not None and t > at
    )
    client, geoip = policy.client_ip, policy.geoip
    return EdgePolicy(
        rules=tuple(rules),
        default=policy.default,
        at=at,
        mode="report" if policy.mode == "report" else mode,
        exempt_ips=tuple(str(n) for n in policy.exempt_ips),
        exempt_paths=policy.exempt_paths,
        allow_private=policy.allow_private,
        client=ClientAddress(
            header=client.header,
            trusted_proxies=tuple(str(n) for n in client.trusted_proxies),
            hops=client.hops,
        ),
        country_db=geoip.country_db,
        anonymous_db=geoip.anonymous_db,
        asn_db=geoip.asn_db,
        reload_interval=geoip.reload_interval,
        answer=BlockAnswer(message=policy.message, info_url=policy.info_url),
        valid_until=changes[0] if changes else None,
        losses=tuple(losses),
        notes=tuple(notes),
    )


def _rule_answer(rule: RulePolicy, policy: Policy) -> BlockAnswer | None:
    """The rule's own message, code and info_url over the policy's (None: none of its own)."""
    message = getattr(rule, "message", None)
    code: str | None = getattr(rule, "code", None)
    info_url: str | None = getattr(rule, "info_url", None)
    if message is None and code is None and info_url is None:
        return None
    text = getattr(message, "text", message) if message is not None else policy.message
    return BlockAnswer(
        message=str(text),
        code=code or BLOCK_CODE,
        info_url=info_url if info_url is not None else policy.info_url,
    )


def _phase(rule: RulePolicy, at: datetime) -> tuple[Action | None, Phase]:
    """The rule's action at ``at`` (None: not started) and its phase, as the engine has it."""
    starts = rule.warn_from or rule.enforce_from
    if starts is not None and at < starts:
        return None, "grace"
    if rule.enforce_from is None:
        return rule.action, "always"
    if at < rule.enforce_from:
        return ("warn" if rule.action == "block" else rule.action), "grace"
    return rule.action, "enforced"


def _match(rule: RulePolicy) -> EdgeMatch:
    def split(codes: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str], bool, bool]:
        return (
            frozenset(c for c in codes if len(c) == 2),
            frozenset(c for c in codes if "-" in c),
            "*" in codes,
            "unknown" in codes,
        )

    countries, subdivisions, any_country, unknown = split(rule.regions)
    ex_countries, ex_subdivisions, ex_any, ex_unknown = split(rule.except_regions)
    methods = frozenset(rule.methods)
    if "GET" in methods:
        methods |= {"HEAD"}  # as the engine: a rule about GET is not bypassed with HEAD
    return EdgeMatch(
        countries=countries,
        subdivisions=subdivisions,
        any_country=any_country,
        unknown=unknown,
        except_countries=ex_countries,
        except_subdivisions=ex_subdivisions,
        except_any_country=ex_any,
        except_unknown=ex_unknown,
        paths=rule.paths,
        methods=methods,
        hosts=rule.hosts,
        anonymizers=frozenset(rule.anonymizers),
        asns=frozenset(rule.asns),
    )


# -- the reference interpreter -----------------------------------------------------------------


@dataclass(frozen=True)
class EdgeFacts:
    """What an edge knows about one request once it has found the client's address."""

    client_ip: str | None  # the client's address; None: it could not be found (unresolved)
    country: str | None = None  # from the country database; None: none
    subdivisions: tuple[str, ...] = ()  # ISO 3166-2, every level of the record
    found: bool = True  # False: the address is not in the database at all
    method: str = "GET"
    path: str = "/"
    host: str = ""  # lower-case, without port; "" = none
    anonymizers: frozenset[str] = frozenset()
    asn: int | None = None


class EdgeOutcome(NamedTuple):
    """What the edge does: the fields of :class:`geofence.Decision` an edge can reproduce."""

    action: Action
    enforced: bool
    reason: str  # "rule", "default", "exempt_ip", "exempt_path", "private", "not_found", ...
    rule: str | None = None
    status: int | None = None  # of a block
    warn_from: datetime | None = None
    enforce_from: datetime | None = None
    dry_runs: tuple[str, ...] = ()  # dry-run rules that matched on the way


_path_regex = lru_cache(maxsize=256)(path_regex)
_host_regex = lru_cache(maxsize=256)(host_regex)


def _rule_matches(rule: EdgeRule, facts: EdgeFacts, country: str | None) -> bool:
    m = rule.match
    if m.methods and facts.method.upper() not in m.methods:
        return False
    if m.hosts and not (facts.host and _full(_host_regex(m.hosts), facts.host)):
        return False
    if m.paths and not _full(_path_regex(m.paths), facts.path):
        return False
    subdivisions = facts.subdivisions if country is not None else ()
    if not m.covers(country, subdivisions) or m.excepts(country, subdivisions):
        return False
    if m.anonymizers and m.anonymizers.isdisjoint(facts.anonymizers):
        return False
    return not m.asns or facts.asn in m.asns


def _full(regex: str, text: str) -> bool:
    # fullmatch: the "$" of these portable patterns then cannot stop before a final newline.
    return _compiled(regex).fullmatch(text) is not None


# decide() is a reference, not a hot path, but a scenario table calls it ~10^5 times: what it
# derives from the EdgePolicy is kept per distinct value.
@lru_cache(maxsize=1024)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


@lru_cache(maxsize=256)
def _network_set(cidrs: tuple[str, ...]) -> NetworkSet:
    return NetworkSet(_networks(cidrs))


@lru_cache(maxsize=256)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return compile_globs(patterns)


def decide(edge: EdgePolicy, facts: EdgeFacts) -> EdgeOutcome:
    """What an edge that implements ``edge`` exactly decides for ``facts``."""
    ip = parse_ip(facts.client_ip) if facts.client_ip is not None else None
    if ip is not None and ip in _network_set(edge.exempt_ips):
        return EdgeOutcome("allow", True, "exempt_ip")
    exempt = _globs(edge.exempt_paths)
    if exempt is not None and exempt.match(facts.path) and not has_dot_segment(facts.path):
        return EdgeOutcome("allow", True, "exempt_path")
    country: str | None
    if ip is None:
        country, fallback = None, "unresolved_client"
    elif is_private(ip):
        if edge.allow_private:
            return EdgeOutcome("allow", True, "private")
        country, fallback = None, "private"
    else:
        country = facts.country
        fallback = (
            "default" if country is not None else "no_country" if facts.found else "not_found"
        )
    dry: EdgeOutcome | None = None
    dry_names: list[str] = []
    outcome: EdgeOutcome | None = None
    for rule in edge.rules:
        if not _rule_matches(rule, facts, country):
            continue
        found = EdgeOutcome(
            rule.action,
            True,
            "rule",
            rule.name,
            rule.status if rule.action == "block" else None,
            rule.warn_from,
            rule.enforce_from,
        )
        if rule.dry_run:
            if rule.action != "allow":
                dry_names.append(rule.name)
                dry = dry or found
            continue
        outcome = found
        break
    if outcome is None:
        block = edge.default == "block"
        outcome = EdgeOutcome(edge.default, True, fallback, None, 451 if block else None)
    if dry is not None and outcome.action == "allow":
        # The request passes anyway; what it shows is what the dry run would do.
        outcome = dry._replace(enforced=False)
    if dry_names:
        outcome = outcome._replace(dry_runs=tuple(dry_names))
    if edge.mode == "report" and outcome.action != "allow":
        outcome = outcome._replace(enforced=False)
    return outcome


def _networks(cidrs: tuple[str, ...]) -> list[IPv4Network | IPv6Network]:
    return [IPv6Network(c) if ":" in c else IPv4Network(c) for c in cidrs]
