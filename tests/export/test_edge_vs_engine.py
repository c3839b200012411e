"""The edge form against the engine, differentially: on every row of each policy's generated
scenario table, ``decide(plan(policy, at=t), facts)`` is what ``Engine.decide(request,
now=t)`` decides (action, enforced, reason, rule, status, the warning's dates, dry runs).

The engine reads the client from X-Forwarded-For sent by a trusted 127.0.0.1 and looks it up
in the policy's City database; the edge is given the facts the scenario generator wrote into
that database, so a disagreement in either the translation or the table shows up here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from geofence import Decision, Engine
from geofence.export import EdgeOutcome, EdgePolicy, ExportMode, decide, plan
from geofence.export._scenarios import Client, Scenario, scenario_table

Exported = tuple[dict[str, Any], list[Client]]

Row = tuple[str, str, bool, str, str | None, int | None, object, object, tuple[str, ...]]


def _engine_row(decision: Decision) -> Row:
    return (
        decision.action,
        decision.reason,
        decision.enforced,
        decision.rule or "",
        decision.country,
        decision.status,
        decision.warn_from,
        decision.enforce_from,
        decision.report_rules,
    )


def _edge_row(outcome: EdgeOutcome, scenario: Scenario) -> Row:
    # The country is the edge's own lookup, compared too: it proves the table and the
    # database agree, so that the rest compares decisions and not data.
    country = (
        None if scenario.client.private or scenario.client.ip is None else scenario.client.country
    )
    if outcome.reason in ("exempt_ip", "exempt_path", "private"):
        country = None  # the engine fills it only when it looked the client up
    return (
        outcome.action,
        outcome.reason,
        outcome.enforced,
        outcome.rule or "",
        country,
        outcome.status,
        outcome.warn_from,
        outcome.enforce_from,
        outcome.dry_runs,
    )


def run_table(
    mapping: dict[str, object], scenarios: list[Scenario], mode: ExportMode
) -> Counter[str]:
    engine = Engine.from_config(mapping)
    plans: dict[datetime, EdgePolicy] = {}
    outcomes: Counter[str] = Counter()
    mismatches: list[str] = []
    for scenario in scenarios:
        edge = plans.get(scenario.at)
        if edge is None:
            edge = plans[scenario.at] = plan(engine.policy, at=scenario.at, mode=mode)
        want = _engine_row(engine.decide(scenario.request_info(), now=scenario.at))
        got = _edge_row(decide(edge, scenario.facts()), scenario)
        if got != want and len(mismatches) < 20:
            mismatches.append(f"{scenario}\n  engine {want}\n  edge   {got}")
        outcomes[f"{want[0]}/{want[1]}"] += 1
        outcomes["rows"] += 1
        outcomes["mismatches"] += got != want
    assert not mismatches, "\n".join(mismatches)
    return outcomes


@pytest.mark.parametrize(
    ("name", "mode"), [("main", "enforce"), ("allowlist", "enforce"), ("report", "report")]
)
def test_edge_decides_what_the_engine_decides(
    name: str,
    mode: ExportMode,
    exported: Callable[[str], Exported],
    record_property: Callable[..., None],
) -> None:
    mapping, clients = exported(name)
    engine = Engine.from_config(mapping)
    scenarios = scenario_table(engine.policy, clients)
    outcomes = run_table(mapping, scenarios, mode)
    record_property("scenario_rows", outcomes["rows"])
    print(f"{name}: {outcomes['rows']} rows, {outcomes['mismatches']} mismatches", dict(outcomes))
    assert outcomes["mismatches"] == 0
    # The table is not trivially one-sided: blocks, warnings and allows all occur.
    assert {k.split("/")[0] for k in outcomes if "/" in k} >= {"allow", "warn", "block"}
