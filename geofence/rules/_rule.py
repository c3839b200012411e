"""Compiled rules: conditions, grace schedule and phase, built once at load time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from geofence._model import Action, Facts
from geofence._record import record
from geofence.config import RulePolicy
from geofence.rules._conditions import CONDITIONS, Condition, Regions

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


def _only_countries(condition: Condition) -> frozenset[str] | None:
    """A ``regions`` condition's countries when it holds for exactly those (no subdivision,
    no ``*``, no ``unknown``; not ``except_regions``)."""
    if type(condition) is not Regions:
        return None
    plain = not (condition.subdivisions or condition.any_known or condition.unknown)
    return condition.countries if plain else None


@record(frozen=True, slots=True)
class Rule:
    name: str
    action: Action
    # What the rule requires, each given condition once (see _conditions.py).
    conditions: tuple[Condition, ...]
    # Integer microseconds since 1970, so that the per-request comparison is exact and cheap.
    starts: int | None  # the rule is off before this (warn_from, else enforce_from)
    enforces: int | None  # from here on the rule's own action applies
    warn_from: datetime | None
    enforce_from: datetime | None
    status: int
    report: bool
    # Seconds of per-account grace (DESIGN "Accounts"), None without; block rules only.
    account_grace: float | None = None
    home_mismatch: bool = False  # its matches are remembered per account and country
    # The countries of its ``regions`` when they are only countries: matches() rejects any
    # other client at once, before a condition is asked (most verdicts are for countries no
    # rule names). None when the rule has no such condition.
    countries: frozenset[str] | None = None

    @classmethod
    def compile(cls, rule: RulePolicy) -> Rule:
        built = (condition.build(rule) for condition in CONDITIONS)
        conditions = tuple(c for c in built if c is not None)
        starts = rule.warn_from or rule.enforce_from
        return cls(
            name=rule.name,
            action=rule.action,
            conditions=conditions,
            starts=_micros(starts),
            enforces=_micros(rule.enforce_from),
            warn_from=rule.warn_from,
            enforce_from=rule.enforce_from,
            status=rule.status,
            report=rule.mode == "report",
            account_grace=rule.account_grace,
            home_mismatch=rule.home_mismatch,
            countries=next(filter(None, map(_only_countries, conditions)), None),
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

    def matches(self, facts: Facts) -> bool:
        """Whether every condition the rule gives holds for ``facts``."""
        # A loop, not all() over a generator: this runs for every rule of each new verdict.
        countries = self.countries
        if countries is not None and facts.country not in countries:
            return False
        for condition in self.conditions:  # noqa: SIM110 - see above
            if not condition.matches(facts):
                return False
        return True

    def failed_condition(self, facts: Facts) -> Condition | None:
        """The first condition that does not hold for ``facts`` (None: the rule matches)."""
        return next((c for c in self.conditions if not c.matches(facts)), None)

    @property
    def needs(self) -> frozenset[str]:
        """The client facts this rule's conditions read (e.g. "anonymizers")."""
        return frozenset().union(*(c.needs for c in self.conditions))

    @property
    def subdivision_codes(self) -> frozenset[str]:
        """The ISO 3166-2 codes the rule names (they need a database with subdivisions)."""
        regions = (c for c in self.conditions if isinstance(c, Regions))
        return frozenset().union(*(r.subdivisions for r in regions))
