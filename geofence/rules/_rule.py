"""Rules compiled for matching: sets and one regex each, built once at load time."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from geofence._model import Action
from geofence.config._policy import RulePolicy
from geofence.rules._globs import compile_globs


def is_subdivision(code: str) -> bool:
    return "-" in code


@dataclass(frozen=True, slots=True)
class RegionSet:
    """Normalised region codes as sets; ``matches`` answers for one lookup result."""

    countries: frozenset[str]
    subdivisions: frozenset[str]
    any_known: bool  # "*"
    unknown: bool  # "unknown"

    @classmethod
    def build(cls, codes: Iterable[str]) -> RegionSet | None:
        codes = tuple(codes)
        if not codes:
            return None
        return cls(
            countries=frozenset(c for c in codes if len(c) == 2),
            subdivisions=frozenset(c for c in codes if is_subdivision(c)),
            any_known="*" in codes,
            unknown="unknown" in codes,
        )

    def matches(self, country: str | None, subdivisions: tuple[str, ...]) -> bool:
        if country is None:
            return self.unknown
        if self.any_known or country in self.countries:
            return True
        return bool(self.subdivisions) and any(s in self.subdivisions for s in subdivisions)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Exact integer microseconds since 1970: a float timestamp loses microseconds far from 1970."""
    return (moment - EPOCH) // MICROSECOND


@lru_cache(maxsize=256)
def _phase_words(enforce_from: datetime | None) -> tuple[str, str]:
    """How the CLI and logs name a rule's phase; formatted once per date, not per request."""
    shown = enforce_from.isoformat() if enforce_from else ""
    return f"grace period until {shown}", f"enforced since {shown}"


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else micros(moment)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: Action
    regions: RegionSet | None
    except_regions: RegionSet | None
    anonymizers: frozenset[str]
    paths: re.Pattern[str] | None
    methods: frozenset[str] | None
    # Integer microseconds since 1970, so that the per-request comparison is exact and cheap.
    starts: int | None  # the rule is off before this (warn_from, else enforce_from)
    enforces: int | None  # from here on the rule's own action applies
    warn_from: datetime | None
    enforce_from: datetime | None
    status: int
    report: bool

    @classmethod
    def compile(cls, rule: RulePolicy) -> Rule:
        methods = frozenset(rule.methods)
        if "GET" in methods:
            # HEAD is GET without a body: a rule about GET must not be bypassed with HEAD.
            methods |= {"HEAD"}
        starts = rule.warn_from or rule.enforce_from
        return cls(
            name=rule.name,
            action=rule.action,
            regions=RegionSet.build(rule.regions),
            except_regions=RegionSet.build(rule.except_regions),
            anonymizers=frozenset(rule.anonymizers),
            paths=compile_globs(rule.paths),
            methods=methods or None,
            starts=_micros(starts),
            enforces=_micros(rule.enforce_from),
            warn_from=rule.warn_from,
            enforce_from=rule.enforce_from,
            status=rule.status,
            report=rule.mode == "report",
        )

    def action_at(self, now: int) -> Action | None:
        """The rule's action at ``now``: None while it is off, "warn" in its grace period."""
        if self.starts is not None and now < self.starts:
            return None
        if self.enforces is not None and now < self.enforces:
            return "warn" if self.action == "block" else self.action
        return self.action

    def phase_at(self, now: int) -> str:
        if self.enforces is None:
            return "always"
        return self.grace_phase if now < self.enforces else self.enforced_phase

    @property
    def grace_phase(self) -> str:
        return _phase_words(self.enforce_from)[0]

    @property
    def enforced_phase(self) -> str:
        return _phase_words(self.enforce_from)[1]

    def matches_request(self, path: str, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.paths is None or self.paths.match(path) is not None

    def matches_client(
        self, country: str | None, subdivisions: tuple[str, ...], anonymizers: frozenset[str]
    ) -> bool:
        if self.regions is not None and not self.regions.matches(country, subdivisions):
            return False
        if self.except_regions is not None and self.except_regions.matches(country, subdivisions):
            return False
        return not self.anonymizers or not self.anonymizers.isdisjoint(anonymizers)

    @property
    def uses_subdivisions(self) -> bool:
        return any(
            r is not None and bool(r.subdivisions) for r in (self.regions, self.except_regions)
        )
