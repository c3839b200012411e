"""Rule conditions: one class per condition a rule can give.

A rule matches when every condition it gives matches (DESIGN "Rule conditions"); an omitted or
empty condition places no constraint and is simply not built. Each class knows which key of a
rule it reads and which :class:`geofence._model.Facts` it looks at, so adding a condition is:
a field on ``RulePolicy`` (and its check in the loader), and one class here, listed in
:data:`CONDITIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from geofence._cache import bounded_put
from geofence._model import Facts
from geofence.config import RulePolicy
from geofence.rules._globs import compile_globs


class Condition:
    """One condition of a compiled rule. Built once at load time; ``matches`` runs once per
    distinct set of facts (verdicts are cached), never per request."""

    __slots__ = ()
    #: The facts this condition reads beyond the request's method and path; the engine
    #: consults a database only when some condition needs what it answers.
    needs: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def build(cls, rule: RulePolicy) -> Condition | None:
        """The condition ``rule`` gives, or None when it gives none (omitted or empty)."""
        raise NotImplementedError

    def matches(self, facts: Facts) -> bool:
        raise NotImplementedError

    def why_not(self, facts: Facts) -> str:
        """Human words on why the condition does not hold for ``facts`` (``geofence check``)."""
        raise NotImplementedError


def _listed(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


class Methods(Condition):
    __slots__ = ("methods",)

    def __init__(self, methods: frozenset[str]) -> None:
        self.methods = methods

    @classmethod
    def build(cls, rule: RulePolicy) -> Methods | None:
        methods = frozenset(rule.methods)
        if "GET" in methods:
            # HEAD is GET without a body: a rule about GET must not be bypassed with HEAD.
            methods |= {"HEAD"}
        return cls(methods) if methods else None

    def matches(self, facts: Facts) -> bool:
        return facts.method in self.methods

    def why_not(self, facts: Facts) -> str:
        return f"method {facts.method or '?'} is not one of {_listed(self.methods)}"


# Answers kept per pattern: a regular expression's match costs more than the rest of a
# verdict together, and an app has few paths and hosts (a full memo is emptied, not grown).
SEEN_LIMIT = 1024


def _seen_match(pattern: re.Pattern[str], seen: dict[str, bool], text: str) -> bool:
    found = seen.get(text)
    if found is None:
        found = bounded_put(seen, SEEN_LIMIT, text, pattern.match(text) is not None)
    return found


class Paths(Condition):
    __slots__ = ("pattern", "seen")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.seen: dict[str, bool] = {}

    @classmethod
    def build(cls, rule: RulePolicy) -> Paths | None:
        pattern = compile_globs(rule.paths)
        return None if pattern is None else cls(pattern)

    def matches(self, facts: Facts) -> bool:
        return _seen_match(self.pattern, self.seen, facts.path)

    def why_not(self, facts: Facts) -> str:
        return f"path {facts.path!r} matches none of its paths"


class Regions(Condition):
    """``regions``: the client's country or one of its subdivisions is listed; ``*`` is any
    known country, ``unknown`` a client without one."""

    __slots__ = ("any_known", "countries", "subdivisions", "unknown")
    needs = frozenset({"country"})

    def __init__(self, codes: Iterable[str]) -> None:
        codes = tuple(codes)
        self.countries = frozenset(c for c in codes if len(c) == 2)
        self.subdivisions = frozenset(c for c in codes if "-" in c)
        self.any_known = "*" in codes
        self.unknown = "unknown" in codes

    @classmethod
    def build(cls, rule: RulePolicy) -> Condition | None:
        return cls(rule.regions) if rule.regions else None

    def covers(self, country: str | None, subdivisions: tuple[str, ...]) -> bool:
        if country is None:
            return self.unknown
        if self.any_known or country in self.countries:
            return True
        return bool(self.subdivisions) and any(s in self.subdivisions for s in subdivisions)

    def matches(self, facts: Facts) -> bool:
        return self.covers(facts.country, facts.subdivisions)

    def why_not(self, facts: Facts) -> str:
        return f"{_where(facts)} is not in its regions"


class ExceptRegions(Regions):
    """``except_regions``: subtracted from ``regions`` (the client is in none of them)."""

    __slots__ = ()

    @classmethod
    def build(cls, rule: RulePolicy) -> Condition | None:
        return cls(rule.except_regions) if rule.except_regions else None

    def matches(self, facts: Facts) -> bool:
        return not self.covers(facts.country, facts.subdivisions)

    def why_not(self, facts: Facts) -> str:
        return f"{_where(facts)} is in its except_regions"


class Anonymizers(Condition):
    """``anonymizers``: the anonymous-IP database flags the client with one of these types."""

    __slots__ = ("kinds",)
    needs = frozenset({"anonymizers"})

    def __init__(self, kinds: frozenset[str]) -> None:
        self.kinds = kinds

    @classmethod
    def build(cls, rule: RulePolicy) -> Anonymizers | None:
        return cls(frozenset(rule.anonymizers)) if rule.anonymizers else None

    def matches(self, facts: Facts) -> bool:
        return not self.kinds.isdisjoint(facts.anonymizers)

    def why_not(self, facts: Facts) -> str:
        seen = _listed(facts.anonymizers) or "no anonymizer"
        return f"the network ({seen}) is none of {_listed(self.kinds)}"


class HomeRegions(Condition):
    """``home_regions``: the account's home country is listed, wherever the request comes
    from (an account registered in an unsupported country, reached through a VPN)."""

    __slots__ = ("countries",)
    needs = frozenset({"account"})

    def __init__(self, countries: frozenset[str]) -> None:
        self.countries = countries

    @classmethod
    def build(cls, rule: RulePolicy) -> HomeRegions | None:
        return cls(frozenset(rule.home_regions)) if rule.home_regions else None

    def matches(self, facts: Facts) -> bool:
        return facts.home in self.countries

    def why_not(self, facts: Facts) -> str:
        if facts.home is None:
            return "no account with a home country"
        return f"home country {facts.home} is not in its home_regions"


class HomeMismatch(Condition):
    """``home_mismatch = true``: the request's country differs from the account's home
    country. Both must be known: a client without a country proves no mismatch."""

    __slots__ = ()
    needs = frozenset({"account", "country"})

    @classmethod
    def build(cls, rule: RulePolicy) -> HomeMismatch | None:
        return cls() if rule.home_mismatch else None

    def matches(self, facts: Facts) -> bool:
        return facts.home is not None and facts.country is not None and facts.country != facts.home

    def why_not(self, facts: Facts) -> str:
        if facts.home is None:
            return "no account with a home country"
        if facts.country is None:
            return "a client without a country"
        return f"the request's country is the home country {facts.home}"


class Hosts(Condition):
    """``hosts``: the request's host (lower-case, without the port; an IPv6 literal without
    its brackets) matches one of the globs, where ``*`` stands for one or more whole labels:
    ``*.example.com`` matches ``api.example.com`` and ``a.b.example.com``, not
    ``example.com``. A request without a host matches no ``hosts`` rule."""

    __slots__ = ("globs", "pattern", "seen")
    needs = frozenset({"host"})

    def __init__(self, globs: tuple[str, ...]) -> None:
        self.globs = globs
        self.pattern = re.compile("(?:" + "|".join(map(host_glob_regex, globs)) + r")\Z")
        self.seen: dict[str, bool] = {}

    @classmethod
    def build(cls, rule: RulePolicy) -> Hosts | None:
        return cls(rule.hosts) if rule.hosts else None

    def matches(self, facts: Facts) -> bool:
        host = facts.host
        return host is not None and _seen_match(self.pattern, self.seen, host)

    def why_not(self, facts: Facts) -> str:
        if not facts.host:
            return "the request has no host"
        return f"host {facts.host!r} matches none of {', '.join(self.globs)}"


def host_glob_regex(glob: str) -> str:
    """A normalised ``hosts`` glob (checked by the loader) as a regular expression: a ``*``
    label is one or more whole labels, everything else literal."""
    if ":" in glob:  # an IPv6 literal: no labels, no wildcard
        return re.escape(glob)
    labels = (
        r"[^.]+(?:\.[^.]+)*" if label == "*" else re.escape(label) for label in glob.split(".")
    )
    return r"\.".join(labels)


class Asns(Condition):
    """``asns``: the ASN database (``geoip.asn_db``) gives the client one of these autonomous
    system numbers. A client the database has no number for matches none."""

    __slots__ = ("numbers",)
    needs = frozenset({"asn"})

    def __init__(self, numbers: frozenset[int]) -> None:
        self.numbers = numbers

    @classmethod
    def build(cls, rule: RulePolicy) -> Asns | None:
        return cls(frozenset(rule.asns)) if rule.asns else None

    def matches(self, facts: Facts) -> bool:
        return facts.asn in self.numbers

    def why_not(self, facts: Facts) -> str:
        shown = ", ".join(f"AS{n}" for n in sorted(self.numbers))
        if facts.asn is None:
            return f"no autonomous system number for the client (wanted {shown})"
        return f"AS{facts.asn} is none of {shown}"


def _where(facts: Facts) -> str:
    if facts.country is None:
        return "a client without a country"
    return " / ".join((facts.country, *facts.subdivisions))


#: Every condition, in the order a rule checks them (cheapest first).
CONDITIONS: tuple[type[Condition], ...] = (
    Methods,
    Hosts,
    Paths,
    HomeRegions,
    Regions,
    ExceptRegions,
    HomeMismatch,
    Anonymizers,
    Asns,
)
