"""[metrics] opentelemetry: observable instruments, read by the SDK when it collects.

In this process a MeterProvider of our own with an InMemoryMetricReader reads the instruments;
the global meter (which can be set once per process) is tested in a child process, with the
SDK and without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests_support import CITY_DB

import geofence
from geofence import RequestInfo
from geofence.metrics._opentelemetry import Instruments

PROJECT = Path(__file__).resolve().parent.parent.parent
GB, CN = "81.2.69.142", "175.16.199.1"
NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    """instrument name -> its metric (points, unit, monotonic, ...)."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: Any, **attributes: object) -> list[Any]:
    return [
        p
        for p in metric.data.data_points
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    ]


def test_decisions_and_rule_phases_as_instruments(unique: str) -> None:
    reader = InMemoryMetricReader()
    Instruments(MeterProvider(metric_readers=[reader]).get_meter("geofence"), now=NOW)
    day = timedelta(days=1)
    engine = geofence.Engine.from_config(
        {
            "geoip": {"country_db": CITY_DB},
            "metrics": {"opentelemetry": True},
            "rules": [
                {"name": f"{unique}-cn", "action": "block", "regions": ["CN"]},
                {
                    "name": f"{unique}-gb",
                    "action": "block",
                    "regions": ["GB"],
                    "warn_from": (NOW - day).isoformat(),
                    "enforce_from": (NOW + day).isoformat(),
                },
            ],
        }
    )
    for _ in range(4):
        engine.decide(RequestInfo(peer=CN, path="/"))
    got = collect(reader)
    decisions = got["geofence.decisions"]
    assert decisions.unit == "{decision}"
    assert decisions.data.is_monotonic
    (point,) = points(decisions, **{"security_rule.name": f"{unique}-cn"})
    assert point.value == 4
    assert dict(point.attributes) == {
        "geofence.action": "block",
        "geofence.enforced": True,
        "geofence.reason": "rule",
        "security_rule.name": f"{unique}-cn",
        "geo.country.iso_code": "CN",
    }
    engine.decide(RequestInfo(peer=CN, path="/"))
    (point,) = points(
        collect(reader)["geofence.decisions"], **{"security_rule.name": f"{unique}-cn"}
    )
    assert point.value == 5  # cumulative: read again at the next collection

    phases = collect(reader)["geofence.rule.phase"]
    assert [p.value for p in points(phases, **{"security_rule.name": f"{unique}-cn"})] == [2]
    assert [p.value for p in points(phases, **{"security_rule.name": f"{unique}-gb"})] == [1]
    built = collect(reader)["geofence.db.build_timestamp"]
    assert built.unit == "s"
    assert points(built, **{"geofence.db": "country"})
    for name in ("geofence.db.reloads", "geofence.db.lookup_errors", "geofence.account.events"):
        assert name not in got or got[name].data.is_monotonic
    assert [p.value >= 0 for p in got["geofence.store.errors"].data.data_points] == [True]


CHILD = textwrap.dedent(
    """
    import json, sys
    from geofence.metrics import _opentelemetry
    called = []
    original = _opentelemetry.Instruments._decisions
    def counting(self, options):
        called.append(1)
        return original(self, options)
    _opentelemetry.Instruments._decisions = counting

    import geofence
    engine = geofence.Engine.from_config(
        {"metrics": {"opentelemetry": True},
         "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}]})
    for _ in range(3):
        engine.decide(geofence.RequestInfo(peer="114.114.114.114", path="/"))
    out = {"called_before": len(called)}
    if sys.argv[1] == "sdk":
        # Set after the instruments were made: the global meter hands them over.
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        engine.decide(geofence.RequestInfo(peer="114.114.114.114", path="/"))
        data = reader.get_metrics_data()
        out["points"] = {
            m.name: [[dict(p.attributes), p.value] for p in m.data.data_points]
            for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
        }
        out["scope"] = [s.scope.name for r in data.resource_metrics for s in r.scope_metrics]
    else:
        out["sdk_loaded"] = "opentelemetry.sdk" in sys.modules
    out["called_after"] = len(called)
    print(json.dumps(out))
    """
)


def run_child(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_global_meter_hands_the_instruments_to_the_sdk() -> None:
    got = run_child("sdk")
    assert got["scope"] == ["geofence"]
    blocked = [v for a, v in got["points"]["geofence.decisions"] if a["security_rule.name"] == "cn"]
    assert blocked == [4]
    assert got["points"]["geofence.rule.phase"] == [[{"security_rule.name": "cn"}, 2]]
    assert got["called_after"] == 1  # once, when the reader collected; never per request


def test_the_api_alone_costs_nothing_and_raises_nothing() -> None:
    got = run_child("api")
    # Without an SDK nothing ever collects: the callbacks are never called.
    assert got == {"called_before": 0, "sdk_loaded": False, "called_after": 0}
