"""``geofence validate``: load a policy, check its databases, and show each rule's timeline.

What a deploy pipeline or an operator wants to know before (and long after) a policy goes live:
does it load; which databases answer, how old they are (``geoip.max_age``); when each rule
starts warning and starts enforcing; which rules can never decide; and whether the account store
answers. Exit status 0 when all is well; 1 when something needs attention (a database older than
``geoip.max_age`` or without a build date while ``max_age`` is set, a smoke lookup that failed,
an unreachable account store, a rule that can never decide), each named on a ``WARNING`` line;
2 for a usage or configuration error (the ConfigError text on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from geofence._engine import Engine
from geofence._errors import DatabaseError
from geofence.accounts._store import StoreError
from geofence.cli._accounts import duration
from geofence.cli._example import example_policy
from geofence.config import Policy, RulePolicy
from geofence.geoip._info import DatabaseInfo, describe
from geofence.geoip._records import GeoRecord
from geofence.rules._conditions import host_glob_regex
from geofence.rules._globs import compile_globs

EXIT_OK = 0
EXIT_WARNINGS = 1  # something needs attention: named on the WARNING lines (CI can gate on it)

DESCRIPTION = """\
Load the policy (the example policy without --config), check its databases and show each
rule's timeline: off -> warn -> enforce, with dates, the current phase marked (now, or the
time given with --at).

For each database: its type, file, build date and age (at --at when given), search tree
size, and a smoke lookup of one IPv4 and one IPv6 address through the engine. With
geoip.max_age set, a database built longer ago than that is STALE. Also: the [accounts]
store (and whether it answers) and [strikes].

Exit status: 0 when all is well; 1 when something needs attention, each on a WARNING line
(a stale database, a database without a build date while max_age is set, a failed smoke
lookup, an unreachable account store, a rule that can never decide); 2 for a usage or
configuration error, with the error on stderr."""

# Smoke lookups: addresses that are in MaxMind's test databases and in the real ones, so that
# a working file answers something recognisable. The embedded default gets the addresses its
# own load check uses.
PROBES = {
    "geoip.country_db": ("81.2.69.142", "2a02:d0c0::1"),
    "geoip.anonymous_db": ("1.2.0.1", "abcd:1000::1"),
    "geoip.asn_db": ("12.81.92.1", "2600:6000::1"),
}
EMBEDDED_PROBES = ("8.8.8.8", "2001:4860:4860::8888")


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence validate`` under the top-level ``commands``."""
    command = commands.add_parser(
        "validate",
        help="load the policy, check the databases, print each rule's timeline",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--config", metavar="FILE", help=".toml or .json policy (default: example)"
    )
    command.add_argument(
        "--at",
        metavar="TIME",
        help="show phases and database ages at this ISO 8601 time with a zone (default: now)",
    )
    command.add_argument("--json", action="store_true", help="print one JSON object")
    command.set_defaults(func=_run)


# -- what is reported ----------------------------------------------------------------------------


@dataclass
class Report:
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)


def _run(args: argparse.Namespace) -> int:
    from geofence.cli._main import _parse_time  # _main imports this module

    if args.at is not None:
        moment = _parse_time(args.at).astimezone(timezone.utc)
    else:
        moment = datetime.now(timezone.utc).replace(microsecond=0)  # shown: to the second
    engine = Engine.from_config(example_policy() if args.config is None else args.config)
    try:
        report = build_report(engine, moment, source=args.config, at_given=args.at is not None)
    finally:
        store = engine.store
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps(report.document, indent=2))
    else:
        print("\n".join(report.lines))
    return EXIT_WARNINGS if report.warnings else EXIT_OK


def build_report(engine: Engine, moment: datetime, *, source: str | None, at_given: bool) -> Report:
    """Everything ``validate`` says about ``engine`` at ``moment``, as text and as JSON."""
    policy = engine.policy
    report = Report()
    shown_source = source if source is not None else "the example policy"
    report.lines.append(
        f"policy     {shown_source}: mode {policy.mode}, default {policy.default}, "
        f"on_error {policy.on_error}"
    )
    if policy.mode != "enforce":
        report.lines.append(f"           {MODE_NOTES[policy.mode]}")
    report.lines.append(f"at         {stamp(moment)} ({'--at' if at_given else 'now'})")
    databases = [_database(engine, key, db, moment, report) for key, db in _databases(engine)]
    rules = _rules(policy, moment, report)
    accounts = _accounts(engine, report)
    strikes = _strikes(policy, report)
    for warning in report.warnings:
        report.lines.append(f"WARNING: {warning}")
    if not report.warnings:
        report.lines.append("OK: the policy loads, its databases answer, nothing needs attention")
    report.document = {
        "ok": not report.warnings,
        "policy": source,
        "mode": policy.mode,
        "default": policy.default,
        "on_error": policy.on_error,
        "at": moment.isoformat(),
        "databases": databases,
        "rules": rules,
        "accounts": accounts,
        "strikes": strikes,
        "warnings": list(report.warnings),
    }
    return report


MODE_NOTES = {
    "report": "mode report: nothing is blocked or warned; matches are logged as would-block",
    "off": "mode off: the policy decides nothing (every request is allowed, reason off)",
}


# -- databases -----------------------------------------------------------------------------------


def _databases(engine: Engine) -> Iterable[tuple[str, object]]:
    yield "geoip.country_db", engine.country_db
    if engine.anonymous_db is not None:
        yield "geoip.anonymous_db", engine.anonymous_db
    if engine.asn_db is not None:
        yield "geoip.asn_db", engine.asn_db


def _database(
    engine: Engine, key: str, db: object, moment: datetime, report: Report
) -> dict[str, Any]:
    info = describe(db)
    max_age = engine.policy.geoip.max_age
    lines = report.lines
    if key == "geoip.country_db":
        lines.append("databases")
    document: dict[str, Any] = {
        "setting": key,
        "embedded": info.embedded,
        "path": info.path,
        "type": info.database_type,
        "title": info.title,
        "built": None,
        "age_seconds": None,
        "max_age_seconds": max_age,
        "stale": False,
        "ip_version": info.ip_version,
        "node_count": info.node_count,
        "record_size": info.record_size,
        "subdivisions": info.has_subdivisions,
        "follows_file": info.follows_file,
        "data_version": info.data_version,
    }
    if info.embedded:
        version = f"iptocc {info.data_version}" if info.data_version else "iptocc"
        lines.append(f"  {key}  the embedded default ({version}: RIR allocation data)")
        lines.append(
            "    built     not published by iptocc (its data is as old as the installed "
            "wheel); no subdivisions"
        )
        if max_age is not None:
            lines.append("    max_age   does not apply: the embedded default has no build date")
    else:
        lines.append(f"  {key}  {info.database_type} {info.path!r}")
        document.update(_age(key, info, moment, max_age, report))
        lines.append(f"    tree      {_tree(info)}")
        interval = engine.policy.geoip.reload_interval
        lines.append(
            f"    reload    a replaced file is picked up within {duration(interval)}"
            if info.follows_file
            else "    reload    never (geoip.reload_interval = 0)"
        )
    probes = EMBEDDED_PROBES if info.embedded else PROBES[key]
    answers = [_probe(key, db, ip, report) for ip in probes]
    document["smoke_lookups"] = answers
    lines.append(
        "    lookups   "
        + "; ".join(f"{a['ip']} -> {a['answer'] or 'FAILED: ' + a['error']}" for a in answers)
    )
    return document


def _age(
    key: str, info: DatabaseInfo, moment: datetime, max_age: float | None, report: Report
) -> dict[str, Any]:
    epoch = info.build_epoch or 0
    try:
        built = datetime.fromtimestamp(epoch, timezone.utc) if epoch > 0 else None
    except (OverflowError, OSError, ValueError):  # a date no calendar holds: none usable
        built = None
    if built is None:
        report.lines.append("    built     unknown: the file's metadata has no usable build date")
        if max_age is not None:
            report.warnings.append(
                f"{key} {info.path!r} has no usable build date: its age cannot be checked against "
                f"geoip.max_age {duration(max_age)}"
            )
        return {}
    age = moment.timestamp() - epoch
    stale = max_age is not None and age > max_age
    if age < 0:
        shown = f"{stamp(built)}, {span(-age)} after {stamp(moment)}"
    else:
        shown = f"{stamp(built)}, {span(age)} old"
    if max_age is not None:
        verdict = "STALE" if stale else "fresh"
        shown += f" (max_age {duration(max_age)}: {verdict})"
    report.lines.append(f"    built     {shown}")
    if stale:
        assert max_age is not None
        report.warnings.append(
            f"{key} {info.path!r} is stale: built {stamp(built)}, {span(age)} old, more than "
            f"geoip.max_age {duration(max_age)}; update it (geoipupdate)"
        )
    return {"built": built.isoformat(), "age_seconds": age, "stale": stale}


def _tree(info: DatabaseInfo) -> str:
    parts = [f"{info.node_count} nodes" if info.node_count is not None else "? nodes"]
    if info.record_size is not None:
        parts.append(f"{info.record_size}-bit records")
    if info.ip_version == 4:
        parts.append("IPv4 only (IPv6 clients are not found)")
    else:
        parts.append("IPv4 and IPv6")
    parts.append("subdivisions" if info.has_subdivisions else "no subdivisions")
    return ", ".join(parts)


def _probe(key: str, db: object, ip: str, report: Report) -> dict[str, Any]:
    lookup: Callable[[str], object] = db.lookup  # type: ignore[attr-defined]
    try:
        answer = lookup(ip)
    except DatabaseError as error:
        report.warnings.append(f"{key}: the smoke lookup of {ip} failed: {error}")
        return {"ip": ip, "answer": None, "error": str(error)}
    return {"ip": ip, "answer": _answer(answer), "error": None}


def _answer(answer: object) -> str:
    if isinstance(answer, GeoRecord):
        if not answer.found:
            return "not in the database"
        if answer.country is None:
            return "a record without a country"
        if answer.subdivisions:
            return f"{answer.country} ({', '.join(answer.subdivisions)})"
        return answer.country
    if isinstance(answer, frozenset):
        return ", ".join(sorted(answer)) or "no anonymizer"
    if isinstance(answer, int):
        return f"AS{answer}" if answer else "no autonomous system number"
    return repr(answer)


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str  # "off", "warn", "enforce", or a warn / allow rule's own action
    until: datetime | None  # None: for good


def phases(rule: RulePolicy) -> list[Phase]:
    """The rule's phases in order (DESIGN "Times"): off before ``warn_from`` (or
    ``enforce_from``), the grace window, then the rule's own action. A warn or allow rule's
    grace window does what it does afterwards, so the two are one phase."""
    enforced = "enforce" if rule.action == "block" else rule.action
    if rule.enforce_from is None:
        return [Phase(enforced, None)]
    grace = "warn" if rule.action == "block" else rule.action
    found = [Phase("off", rule.warn_from or rule.enforce_from)]
    if rule.warn_from is not None:
        found.append(Phase(grace, rule.enforce_from))
    found.append(Phase(enforced, None))
    merged: list[Phase] = []
    for phase in found:
        if merged and merged[-1].name == phase.name:
            merged[-1] = phase
        else:
            merged.append(phase)
    return merged


def current(found: Sequence[Phase], moment: datetime) -> int:
    """The index of the phase ``moment`` is in (half-open: at ``until`` the next one runs)."""
    for index, phase in enumerate(found):
        if phase.until is None or moment < phase.until:
            return index
    return len(found) - 1


def timeline(found: Sequence[Phase], now: int) -> str:
    """``off until 2024-06-25T00:00Z -> warn (now) until 2024-07-09T00:00Z -> enforce``"""
    shown = []
    for index, phase in enumerate(found):
        text = phase.name + (" (now)" if index == now else "")
        if phase.until is not None:
            text += f" until {stamp(phase.until)}"
        shown.append(text)
    return " -> ".join(shown)


def _rules(policy: Policy, moment: datetime, report: Report) -> list[dict[str, Any]]:
    lines = report.lines
    lines.append("rules (first match wins)" if policy.rules else "rules      none")
    documents = []
    for index, rule in enumerate(policy.rules):
        found = phases(rule)
        now = current(found, moment)
        head = f"  rules[{index}] {rule.name}: {rule.action}"
        if rule.action == "block":
            head += f", HTTP {rule.status}"
        if rule.mode == "report":
            head += ", report mode (a dry run: logged as would-block, never enforced)"
        if rule.account_grace is not None:
            head += f", account grace {duration(rule.account_grace)}"
        lines.append(head)
        lines.append(f"     when    {conditions(rule)}")
        lines.append(f"     phases  {timeline(found, now)}")
        after = found[now + 1] if now + 1 < len(found) else None
        until = found[now].until
        if after is not None and until is not None:
            wait = span((until - moment).total_seconds())
            lines.append(f"     next    {after.name} from {stamp(until)} (in {wait})")
        never = never_decides(policy.rules, index)
        if never is not None:
            lines.append(f"     problem {never}")
            report.warnings.append(f"rules[{index}] {rule.name!r} {never}")
        documents.append(
            {
                "index": index,
                "name": rule.name,
                "action": rule.action,
                "status": rule.status if rule.action == "block" else None,
                "mode": rule.mode,
                "conditions": _conditions_document(rule),
                "warn_from": _iso(rule.warn_from),
                "enforce_from": _iso(rule.enforce_from),
                "account_grace_seconds": rule.account_grace,
                "phases": [{"phase": p.name, "until": _iso(p.until)} for p in found],
                "phase_now": found[now].name,
                "next_change": _iso(until) if after is not None else None,
                "never_decides": never,
            }
        )
    return documents


def conditions(rule: RulePolicy) -> str:
    """The rule's conditions in short, in the config's words; "every request" for none."""
    parts = []
    if rule.regions:
        parts.append("regions " + ", ".join(rule.regions))
    if rule.except_regions:
        parts.append("except " + ", ".join(rule.except_regions))
    if rule.anonymizers:
        parts.append("anonymizers " + ", ".join(rule.anonymizers))
    if rule.asns:
        parts.append("asns " + ", ".join(f"AS{n}" for n in rule.asns))
    if rule.hosts:
        parts.append("hosts " + ", ".join(rule.hosts))
    if rule.paths:
        parts.append("paths " + ", ".join(rule.paths))
    if rule.methods:
        parts.append("methods " + ", ".join(rule.methods))
    if rule.home_regions:
        parts.append("home_regions " + ", ".join(rule.home_regions))
    if rule.home_mismatch:
        parts.append("home_mismatch (request country differs from the account's home)")
    return "; ".join(parts) or "every request"


def _conditions_document(rule: RulePolicy) -> dict[str, Any]:
    return {
        "regions": list(rule.regions),
        "except_regions": list(rule.except_regions),
        "anonymizers": list(rule.anonymizers),
        "asns": list(rule.asns),
        "hosts": list(rule.hosts),
        "paths": list(rule.paths),
        "methods": list(rule.methods),
        "home_regions": list(rule.home_regions),
        "home_mismatch": rule.home_mismatch,
    }


# -- `geofence check`: why a rule did not decide, in the config's words -------------------------

# The engine's reasons that name a list of the rule's, and which list (the CLI shows it).
_LISTED = (
    ("is not in its regions", "regions"),
    ("is in its except_regions", "except_regions"),
    ("matches none of its paths", "paths"),
    ("is not in its home_regions", "home_regions"),
)
SHOWN_CODES = 12  # a long list (a built-in group such as @eu, expanded) is cut after these


@dataclass(frozen=True)
class Why:
    """Why one rule did not decide: the engine's reason, and what ``check`` adds to it."""

    rule: str
    why: str  # Engine.explain's words (JSON "why")
    text: str  # as the text output shows it: with the list it names, or the date it starts


def why_not(policy: Policy, passed: Sequence[tuple[str, str]], moment: datetime) -> list[Why]:
    """``Engine.explain``'s reasons as ``check`` shows them: a rule not in force yet says until
    when (as ``validate``'s timeline does), and a reason about a list shows the list."""
    rules = {rule.name: rule for rule in policy.rules}  # names are unique (the loader checks)
    found = []
    for name, why in passed:
        rule = rules.get(name)
        found.append(Why(name, why, why) if rule is None else _worded(rule, why, moment))
    return found


def _worded(rule: RulePolicy, why: str, moment: datetime) -> Why:
    starts = rule.warn_from or rule.enforce_from
    if starts is not None and moment < starts:
        key = "warn_from" if rule.warn_from is not None else "enforce_from"
        text = f"off until {stamp(starts)} (its {key}): not in force yet"
        return Why(rule.name, why, text)
    for ending, attribute in _LISTED:
        values: tuple[str, ...] = getattr(rule, attribute)
        if why.endswith(ending) and values:
            shown = ", ".join(values[:SHOWN_CODES])
            if len(values) > SHOWN_CODES:
                shown += f", ... ({len(values)} in all)"
            return Why(rule.name, why, f"{why}: {shown}")
    return Why(rule.name, why, why)


# -- rules that can never decide -----------------------------------------------------------------
# Sufficient checks only: a rule is flagged when it provably never decides, never on a guess.


def never_decides(rules: Sequence[RulePolicy], index: int) -> str | None:
    rule = rules[index]
    if rule.regions and all(_covers(rule.except_regions, code) for code in rule.regions):
        return "can never match: every region it names is in its except_regions"
    for earlier_index, earlier in enumerate(rules[:index]):
        if earlier.mode == "report":
            continue  # a dry run decides nothing: the rules after it are still tried
        if _in_force_whenever(earlier, rule) and _catches_all(earlier, rule):
            return (
                f"never decides: every request it matches is decided first by "
                f"rules[{earlier_index}] {earlier.name!r}"
            )
    return None


def _in_force_whenever(earlier: RulePolicy, rule: RulePolicy) -> bool:
    # A rule in its grace window decides too (with warn): only "off" lets later rules through.
    starts = earlier.warn_from or earlier.enforce_from
    if starts is None:
        return True
    later = rule.warn_from or rule.enforce_from
    return later is not None and starts <= later


def _catches_all(earlier: RulePolicy, rule: RulePolicy) -> bool:
    """Whether every request ``rule`` matches is matched by ``earlier`` too."""
    return (
        _regions_cover(earlier, rule)
        and _sets_cover(earlier.anonymizers, rule.anonymizers)
        and _sets_cover(earlier.asns, rule.asns)
        and _sets_cover(_methods(earlier.methods), _methods(rule.methods))
        and _globs_cover(earlier.paths, rule.paths, _path_covers)
        and _globs_cover(earlier.hosts, rule.hosts, _host_covers)
        and (not earlier.home_regions or _codes_cover(earlier.home_regions, rule.home_regions))
        and (not earlier.home_mismatch or rule.home_mismatch)
    )


def _regions_cover(earlier: RulePolicy, rule: RulePolicy) -> bool:
    if earlier.regions and not _codes_cover(earlier.regions, rule.regions):
        return False
    # What the earlier rule subtracts must be subtracted by the later one too.
    return all(_covers(rule.except_regions, code) for code in earlier.except_regions)


def _codes_cover(wide: Sequence[str], narrow: Sequence[str]) -> bool:
    """Every client ``narrow`` names is named by ``wide`` (an empty ``narrow`` is everyone)."""
    if not narrow:
        return "*" in wide and "unknown" in wide
    return all(_covers(wide, code) for code in narrow)


def _covers(codes: Sequence[str], code: str) -> bool:
    if code in codes:
        return True
    if code == "unknown":
        return False
    if code == "*":
        return False  # only "*" itself covers every known country
    country = code.partition("-")[0]
    return "*" in codes or country in codes


def _sets_cover(wide: Iterable[object], narrow: Iterable[object]) -> bool:
    wide_set = set(wide)
    return not wide_set or (bool(narrow) and set(narrow) <= wide_set)


def _methods(methods: Iterable[str]) -> set[str]:
    found = set(methods)
    return found | {"HEAD"} if "GET" in found else found  # as the rule matches them


def _globs_cover(
    wide: Sequence[str], narrow: Sequence[str], covers: Callable[[str, str], bool]
) -> bool:
    if not wide:
        return True
    return bool(narrow) and all(any(covers(w, n) for w in wide) for n in narrow)


def _path_covers(wide: str, narrow: str) -> bool:
    if wide == narrow:
        return True
    if "*" not in narrow:
        pattern = compile_globs([wide])
        return pattern is not None and pattern.match(narrow) is not None
    # "/v1/*" covers "/v1/models/*": its star matches any run of characters, "/" included.
    return wide.endswith("*") and "*" not in wide[:-1] and narrow.startswith(wide[:-1])


def _host_covers(wide: str, narrow: str) -> bool:
    if wide == narrow:
        return True
    if "*" in narrow:
        return False
    return re.fullmatch(host_glob_regex(wide), narrow) is not None


# -- accounts and strikes ------------------------------------------------------------------------


def _accounts(engine: Engine, report: Report) -> dict[str, Any] | None:
    accounts = engine.policy.accounts
    store = engine.store
    if accounts is None or store is None:
        report.lines.append("accounts   none: accounts change no decision")
        return None
    shared = not store.description.startswith("memory:")
    where = (
        "shared by every process that uses it"
        if shared
        else "this process only: each app process keeps its own account state"
    )
    report.lines.append(f"accounts   store {store.description} ({where})")
    error: str | None = None
    try:
        store.ping()
    except StoreError as failure:
        error = " ".join(str(failure).split()).removeprefix(f"{store.description}: ")
    if error is None:
        report.lines.append("           reachable")
    else:
        report.lines.append(f"           UNREACHABLE: {error}")
        report.warnings.append(
            f"accounts.store {store.description} is unreachable ({error}); requests that need "
            f"it get on_store_error = {accounts.on_store_error!r}"
        )
    report.lines.append(
        f"           key_prefix {accounts.key_prefix!r}, timeout {duration(accounts.timeout)}, "
        f"refresh {duration(accounts.refresh)}, on_store_error {accounts.on_store_error}"
    )
    return {
        "store": store.description,
        "shared": shared,
        "reachable": error is None,
        "error": error,
        "key_prefix": accounts.key_prefix,
        "timeout_seconds": accounts.timeout,
        "refresh_seconds": accounts.refresh,
        "on_store_error": accounts.on_store_error,
    }


def _strikes(policy: Policy, report: Report) -> dict[str, Any] | None:
    strikes = policy.strikes
    if strikes is None:
        if policy.accounts is not None:
            report.lines.append("strikes    none: no account is suspended or flagged")
        return None
    counted = "enforced " + " or ".join(sorted(strikes.count))
    then = (
        "flag (the account_suspended event only; nothing is blocked)"
        if strikes.action == "flag"
        else "suspend "
        + (
            "until cleared (geofence accounts clear)"
            if strikes.suspend_for == 0
            else f"for {duration(strikes.suspend_for)}"
        )
        + f", HTTP {strikes.status}"
    )
    report.lines.append(
        f"strikes    {strikes.threshold} strikes ({counted}) within {duration(strikes.window)} "
        f"-> {then}"
    )
    return {
        "count": sorted(strikes.count),
        "threshold": strikes.threshold,
        "window_seconds": strikes.window,
        "action": strikes.action,
        "suspend_for_seconds": strikes.suspend_for,
        "status": strikes.status,
    }


# -- how times are shown -------------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    """UTC, to the minute when that is exact: ``2024-06-25T00:00Z``."""
    utc = moment.astimezone(timezone.utc)
    if utc.second == 0 and utc.microsecond == 0:
        return utc.strftime("%Y-%m-%dT%H:%MZ")
    if utc.microsecond == 0:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(seconds: float) -> str:
    """A rough length of time for people: "8 days", "5 hours", "1 minute"."""
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = math.floor(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    count = math.floor(seconds)
    return f"{count} second{'' if count == 1 else 's'}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
