"""What a replay found: totals, transitions, unparsable lines; as a dict (``--json``) and as
text. Every table is bounded (see :data:`MAX_PATHS`), so the report's memory does not grow
with the log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geofence._model import Decision

#: Kinds of outcome: the action, or "would_warn" / "would_block" for a decision in report
#: mode (the policy's or the rule's ``mode = "report"``): shown, never enforced.
KINDS = ("allow", "warn", "block", "would_warn", "would_block")
MAX_PATHS = 50_000  # distinct paths counted exactly; later new paths go to OTHER_PATHS
MAX_PATH_LENGTH = 512  # a longer path is counted under its first 512 characters and "..."
OTHER_PATHS = "(other paths)"
NO_RULE = "(no rule)"
UNKNOWN = "(unknown)"
KEEP_UNPARSABLE = 5  # unparsable lines kept to show, with their file and number


# Reasons for which the databases were asked and had no country for the client.
_LOOKED_UP = frozenset(
    {"rule", "default", "not_found", "no_country", "unresolved_client", "db_error"}
)


def country_label(decision: Decision) -> str:
    """The country column of a decision: its country; "(unknown)" when the databases were
    asked and had none; else why nobody asked ("(exempt_path)", "(private)", "(off)")."""
    if decision.country:
        return decision.country
    return UNKNOWN if decision.reason in _LOOKED_UP else f"({decision.reason})"


def kind_of(decision: Decision) -> str:
    action = decision.action
    if action == "allow" or decision.enforced:
        return action
    return "would_" + action


@dataclass
class Shown:
    """An unparsable line kept for the report."""

    file: str
    line: int
    why: str
    text: str


@dataclass
class FileSummary:
    path: str
    format: str
    records: int = 0
    unparsable: int = 0


Outcome = tuple[str, str, str, str]  # (kind, rule or NO_RULE, country label, reason)


def outcome(decision: Decision) -> Outcome:
    """What the report counts of a decision: computed once per memoised decision, so that a
    line costs one counter increment."""
    return (kind_of(decision), decision.rule or NO_RULE, country_label(decision), decision.reason)


@dataclass
class Totals:
    """Counts of one policy's decisions: by kind, and by rule, country, reason and path.

    Lines are counted per outcome (kind, rule, country, reason), a small table (rules x
    countries x kinds); the tables by rule, country and reason are sums over it."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    # Paths of lines that were not allowed (an allowed path is no one's concern here).
    paths: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, decision: Decision, kind: str, path: str) -> None:
        self.count(outcome(decision), path)

    def count(self, key: Outcome, path: str) -> None:
        self.outcomes[key] += 1
        kind = key[0]
        if kind != "allow":
            if len(path) > MAX_PATH_LENGTH:
                path = path[:MAX_PATH_LENGTH] + "..."
            self._count_path(path, kind, 1)

    def merge(self, other: Totals) -> None:
        """Add ``other``'s counts (a part of the same replay, e.g. another process's files)."""
        self.outcomes.update(other.outcomes)
        for path, counts in other.paths.items():
            for kind, n in counts.items():
                self._count_path(path, kind, n)

    def _count_path(self, path: str, kind: str, n: int) -> None:
        by_path = self.paths.get(path)
        if by_path is None:
            if len(self.paths) >= MAX_PATHS:
                path = OTHER_PATHS
            by_path = self.paths.setdefault(path, Counter())
        by_path[kind] += n

    @property
    def kinds(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (kind, _, _, _), n in self.outcomes.items():
            counts[kind] += n
        return counts

    @property
    def reasons(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (_, _, _, reason), n in self.outcomes.items():
            counts[reason] += n
        return counts

    @property
    def rules(self) -> dict[str, Counter[str]]:
        """rule -> kind -> lines."""
        return self._by(1)

    @property
    def countries(self) -> dict[str, Counter[str]]:
        """country label -> kind -> lines."""
        return self._by(2)

    def _by(self, column: int) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for key, n in self.outcomes.items():
            table.setdefault(key[column], Counter())[key[0]] += n
        return table

    def document(self, top: int) -> dict[str, Any]:
        kinds = self.kinds
        return {
            "actions": {k: kinds.get(k, 0) for k in KINDS},
            "rules": {name: _kinds(c) for name, c in _ranked(self.rules)},
            "countries": {name: _kinds(c) for name, c in _ranked(self.countries, blocked=True)},
            "reasons": dict(self.reasons.most_common()),
            "paths": [
                {"path": name, **_kinds(c)} for name, c in _ranked(self.paths, blocked=True)[:top]
            ],
        }


def _kinds(counts: Counter[str]) -> dict[str, int]:
    return {k: counts.get(k, 0) for k in KINDS}


def _ranked(
    table: dict[str, Counter[str]], blocked: bool = False
) -> list[tuple[str, Counter[str]]]:
    """Most lines first, or (``blocked``) most blocked lines first, then most lines; then by
    name."""

    def weight(item: tuple[str, Counter[str]]) -> tuple[int, ...]:
        counts = item[1]
        if blocked:
            return (-(counts["block"] + counts["would_block"]), -sum(counts.values()))
        return (-sum(counts.values()),)

    return sorted(table.items(), key=lambda item: (*weight(item), item[0]))


@dataclass
class Report:
    """The result of :func:`geofence.replay.replay`. ``policy`` holds the totals of the
    replayed policy, ``baseline`` those of ``--baseline`` (None without one);
    ``transitions[(before, after)]`` counts lines by their kind under each (with a baseline).
    ``decisions`` is how many times the engine was asked (the rest were memo hits)."""

    files: list[FileSummary] = field(default_factory=list)
    policy: Totals = field(default_factory=Totals)
    baseline: Totals | None = None
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    newly_blocked_countries: Counter[str] = field(default_factory=Counter)
    unparsable: int = 0
    shown: list[Shown] = field(default_factory=list)
    decisions: int = 0
    first: datetime | None = None
    last: datetime | None = None
    at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    # Lines without a host, counted when some rule reads the host.
    hostless: int = 0
    # With accounts (``replay(accounts=True)``): a geofence.replay._accounts.Accounts, whose
    # ``rows()`` are the --accounts CSV and ``totals()`` the JSON's "accounts".
    accounts: Any = None

    def remarks(self) -> list[str]:
        """What the reader of the report should know about how it was made."""
        remarks = list(self.notes)
        if self.accounts is not None:
            remarks.append(self.accounts.summary())
        if self.hostless:
            remarks.append(
                f"a policy has rules with hosts, and {self.hostless} lines have no host "
                "(combined logs record none): they were decided with an empty host"
            )
        return remarks

    def merge(self, other: Report) -> None:
        """Add ``other``, the report of other files replayed with the same policies and
        ``at`` (the seam of ``--jobs``: each process replays some files; their reports are
        merged in the order of the files)."""
        self.files.extend(other.files)
        self.policy.merge(other.policy)
        if self.baseline is not None and other.baseline is not None:
            self.baseline.merge(other.baseline)
        self.transitions.update(other.transitions)
        self.newly_blocked_countries.update(other.newly_blocked_countries)
        self.unparsable += other.unparsable
        self.shown.extend(other.shown[: KEEP_UNPARSABLE - len(self.shown)])
        self.decisions += other.decisions
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last
        self.notes.extend(n for n in other.notes if n not in self.notes)
        self.hostless += other.hostless

    @property
    def records(self) -> int:
        """Lines decided (every line read but the unparsable ones)."""
        return sum(self.policy.kinds.values())

    @property
    def newly_blocked(self) -> int:
        """Lines the policy blocks (enforced) that the baseline did not block; without a
        baseline, every line the policy blocks."""
        if self.baseline is None:
            return self.policy.kinds["block"]
        return sum(
            n for (before, after), n in self.transitions.items() if after == "block" != before
        )

    @property
    def newly_blocked_share(self) -> float:
        return self.newly_blocked / self.records if self.records else 0.0

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        document: dict[str, Any] = {
            "files": [vars(f).copy() for f in self.files],
            "records": self.records,
            "decisions": self.decisions,
            "unparsable": {"count": self.unparsable, "first": [vars(s).copy() for s in self.shown]},
            "from": when(self.first),
            "to": when(self.last),
            "at": when(self.at),
            "policy": self.policy.document(top),
            "baseline": self.baseline.document(top) if self.baseline is not None else None,
            "transitions": [
                {"from": before, "to": after, "count": n}
                for (before, after), n in sorted(
                    self.transitions.items(), key=lambda item: (-item[1], item[0])
                )
            ],
            "newly_blocked": {
                "count": self.newly_blocked,
                "share": round(self.newly_blocked_share, 6),
                "countries": dict(self.newly_blocked_countries.most_common()),
            },
            "notes": self.remarks(),
        }
        if self.accounts is not None:
            document["accounts"] = self.accounts.totals()
        return document
