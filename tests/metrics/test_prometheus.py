"""[metrics] prometheus: what a scrape shows, read from the engine at collection time.

The decision counts are the process's (every engine with [metrics] counts in one tally), so
each test names its rules uniquely (fixture ``unique``) and reads only its own samples.
"""

from __future__ import annotations

import gc
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests_support import ANON_DB, CITY_DB, FIXTURES, MAXMIND

import geofence
from geofence import Account, RequestInfo
from geofence.metrics import _prometheus
from geofence.metrics._sources import SOURCES

GB, US, CN, SE = "81.2.69.142", "216.160.83.56", "175.16.199.1", "89.160.20.112"
RU = "2a02:d0c0::1"
NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def engine(*rules: dict[str, Any], clock: Any = None, **extra: Any) -> geofence.Engine:
    config: dict[str, Any] = {
        "geoip": {"country_db": CITY_DB},
        "metrics": {"prometheus": True},
        "rules": list(rules),
        **extra,
    }
    return geofence.Engine.from_config(config, clock=clock)


def req(ip: str, path: str = "/v1/models") -> RequestInfo:
    return RequestInfo(peer=ip, method="GET", path=path)


def test_every_decision_is_counted_repeated_allows_too(
    unique: str, scrape: Any, value: Any
) -> None:
    eng = engine(
        {"name": f"{unique}-cn", "action": "block", "regions": ["CN"]},
        {"name": f"{unique}-se", "action": "warn", "regions": ["SE"]},
        {"name": f"{unique}-gb", "action": "allow", "regions": ["GB"]},
        {"name": f"{unique}-us", "action": "block", "regions": ["US"], "mode": "report"},
    )
    for _ in range(5):
        eng.decide(req(GB))  # the first computes, the next four are cache hits
    for _ in range(3):
        eng.decide(req(CN))
    eng.decide(req(SE))
    eng.decide(req(US))
    eng.decide(req(US))
    got = scrape()
    name = "geofence_decisions_total"
    common = {"enforced": "true"}
    assert (
        value(got, name, action="allow", reason="rule", rule=f"{unique}-gb", country="GB", **common)
        == 5
    )
    assert (
        value(got, name, action="block", reason="rule", rule=f"{unique}-cn", country="CN", **common)
        == 3
    )
    assert (
        value(got, name, action="warn", reason="rule", rule=f"{unique}-se", country="SE", **common)
        == 1
    )
    # Report mode: the dry-run block is counted as not enforced.
    assert (
        value(
            got,
            name,
            action="block",
            enforced="false",
            reason="rule",
            rule=f"{unique}-us",
            country="US",
        )
        == 2
    )


def test_counts_only_grow_and_survive_the_engine(unique: str, scrape: Any, value: Any) -> None:
    eng = engine({"name": unique, "action": "block", "regions": ["CN"]})
    labels = {
        "action": "block",
        "enforced": "true",
        "reason": "rule",
        "rule": unique,
        "country": "CN",
    }
    eng.decide(req(CN))
    assert value(scrape(), "geofence_decisions_total", **labels) == 1
    eng.decide(req(CN))
    assert value(scrape(), "geofence_decisions_total", **labels) == 2
    gc.collect()  # engines other tests dropped, so that only this one goes below
    before = len(SOURCES.engines())
    assert eng in SOURCES.engines()
    del eng
    gc.collect()
    # Held weakly: a dropped engine is no longer read, and its counts stay.
    assert len(SOURCES.engines()) == before - 1
    assert value(scrape(), "geofence_decisions_total", **labels) == 2


def test_without_metrics_nothing_is_counted_or_attached(
    unique: str, scrape: Any, value: Any
) -> None:
    attached = len(SOURCES.engines())
    config = {
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": unique, "action": "block", "regions": ["CN"]}],
    }
    eng = geofence.Engine.from_config(config)
    eng.decide(req(CN))
    assert len(SOURCES.engines()) == attached
    assert not [s for s in scrape() if s.labels.get("rule") == unique]


def test_one_collector_in_the_registry_for_many_engines(unique: str) -> None:
    first = engine({"name": f"{unique}-a", "action": "block", "regions": ["CN"]})
    second = engine({"name": f"{unique}-b", "action": "block", "regions": ["CN"]})
    assert _prometheus.register() is _prometheus.register()  # idempotent
    geofence.metrics.attach(first)  # again: no second receiver, no second collector
    first.decide(req(CN))
    second.decide(req(CN))
    text = generate_latest(REGISTRY).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE geofence_decisions_total counter") == 1
    ours = {
        s.labels["rule"]: s.value
        for s in families["geofence_decisions"].samples
        if s.labels["rule"].startswith(unique)
    }
    assert ours == {f"{unique}-a": 1.0, f"{unique}-b": 1.0}
    phases = {s.labels["rule"]: s.value for s in families["geofence_rule_phase"].samples}
    assert phases[f"{unique}-a"] == phases[f"{unique}-b"] == 2


def test_database_build_timestamp_is_the_files_build_epoch(scrape: Any, value: Any) -> None:
    eng = engine(
        {"name": "anon", "action": "block", "anonymizers": ["vpn"]},
        geoip={"country_db": CITY_DB, "anonymous_db": ANON_DB},
    )
    with maxminddb.open_database(CITY_DB) as city, maxminddb.open_database(ANON_DB) as anon:
        epochs = (city.metadata().build_epoch, anon.metadata().build_epoch)
    got = scrape()
    # Several engines may be attached (other tests'): the oldest of each kind is shown.
    city_stamp = value(got, "geofence_db_build_timestamp_seconds", db="country")
    assert city_stamp is not None and city_stamp <= epochs[0]
    assert value(got, "geofence_db_build_timestamp_seconds", db="anonymous") <= epochs[1]
    assert {s.labels["db"] for s in got if s.name == "geofence_db_build_timestamp_seconds"} <= {
        "country",
        "anonymous",
        "asn",
    }
    del eng


def test_the_embedded_database_has_no_build_timestamp(unique: str) -> None:
    from geofence.metrics._sources import Sources

    sources = Sources()
    eng = geofence.Engine.from_config(
        {
            "metrics": {"prometheus": True},
            "rules": [{"name": unique, "action": "block", "regions": ["CN"]}],
        }
    )
    sources.attach(eng)
    assert sources.build_timestamps() == {}
    assert sources.rule_phases() == {unique: 2}


def test_rule_phase_follows_the_clock(unique: str, scrape: Any, value: Any) -> None:
    dated = {"action": "block", "regions": ["CN"]}
    eng = engine(
        {
            "name": f"{unique}-later",
            **dated,
            "warn_from": (NOW + DAY).isoformat(),
            "enforce_from": (NOW + 9 * DAY).isoformat(),
        },
        {
            "name": f"{unique}-grace",
            **dated,
            "warn_from": (NOW - DAY).isoformat(),
            "enforce_from": (NOW + DAY).isoformat(),
        },
        {"name": f"{unique}-enforced", **dated, "enforce_from": (NOW - DAY).isoformat()},
        {"name": f"{unique}-plain", "action": "warn", "regions": ["RU"]},
    )
    phases = {
        at: {
            s.labels["rule"].removeprefix(f"{unique}-"): s.value
            for s in scrape(at)
            if s.name == "geofence_rule_phase" and s.labels["rule"].startswith(unique)
        }
        for at in (NOW, NOW + 2 * DAY, NOW + 10 * DAY)
    }
    assert phases[NOW] == {"later": 0, "grace": 1, "enforced": 2, "plain": 2}
    assert phases[NOW + 2 * DAY] == {"later": 1, "grace": 2, "enforced": 2, "plain": 2}
    assert phases[NOW + 10 * DAY] == {"later": 2, "grace": 2, "enforced": 2, "plain": 2}
    off = engine({"name": f"{unique}-off", **dated}, mode="off")
    assert value(scrape(NOW), "geofence_rule_phase", rule=f"{unique}-off") == 0
    del eng, off


def test_account_events_are_counted_by_kind(unique: str, scrape: Any, value: Any) -> None:
    def counts() -> dict[str, float]:
        return {
            s.labels["kind"]: s.value for s in scrape() if s.name == "geofence_account_events_total"
        }

    before = counts()
    eng = engine(
        {"name": unique, "action": "block", "regions": ["CN"]},
        accounts={},
        strikes={"threshold": 2, "window": "1h", "suspend_for": "1d"},
    )
    account = Account(id=f"org-{unique}", home_country="US")
    for _ in range(3):
        eng.decide(req(CN), account=account)
    after = counts()
    grown = {kind: after[kind] - before.get(kind, 0) for kind in after}
    assert grown["account_strike"] >= 2
    assert grown["account_suspended"] == 1


def test_store_errors_are_counted(unique: str, scrape: Any, value: Any) -> None:
    pytest.importorskip("redis")
    before = value(scrape(), "geofence_store_errors_total")
    # Nothing listens on port 1: every store call fails at once.
    eng = engine(
        {"name": unique, "action": "block", "regions": ["CN"]},
        accounts={"store": "redis://127.0.0.1:1/0", "timeout": "50ms"},
    )
    # A new account each time needs the store; three failures in a row open the circuit
    # breaker, which sends one store_error event.
    for i in range(3):
        assert eng.decide(req(GB), account=Account(id=f"org-{unique}-{i}")).action == "allow"
    assert value(scrape(), "geofence_store_errors_total") == (before or 0) + 1


def test_lookup_errors_are_counted(unique: str, scrape: Any, value: Any) -> None:
    before = value(scrape(), "geofence_db_lookup_errors_total", db="country") or 0
    eng = engine(
        {"name": unique, "action": "block", "regions": ["CN"]},
        geoip={"country_db": str(FIXTURES / "GeoIP2-City-bad-record.mmdb"), "reload_interval": 0},
    )
    assert eng.decide(req(US)).reason == "db_error"  # a malformed record (see tests/hazards)
    assert eng.decide(req(US)).reason == "db_error"  # not cached: looked up again
    assert value(scrape(), "geofence_db_lookup_errors_total", db="country") == before + 2


def test_reloads_and_refusals_are_counted(
    tmp_path: Path, unique: str, scrape: Any, value: Any
) -> None:
    target = tmp_path / "GeoIP2-City.mmdb"
    install(Path(CITY_DB).read_bytes(), target)

    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    eng = engine(
        {"name": unique, "action": "block", "regions": ["CN"]},
        geoip={"country_db": str(target), "reload_interval": 60},
        clock=clock,
    )

    def reloads(result: str) -> float:
        return value(scrape(), "geofence_db_reloads_total", db="country", result=result) or 0

    before = reloads("success"), reloads("refused")
    install((FIXTURES / "GeoIP2-City-UA.mmdb").read_bytes(), target)
    clock.now += 61
    eng.decide(req(GB))
    install((MAXMIND / "GeoIP2-Anonymous-IP-Test.mmdb").read_bytes(), target)  # the wrong type
    clock.now += 61
    eng.decide(req(SE))
    assert (reloads("success"), reloads("refused")) == (before[0] + 1, before[1] + 1)


def install(content: bytes, target: Path, _stamp: list[int] = [1_600_000_000]) -> None:  # noqa: B006
    """Replace ``target`` atomically, each version with its own mtime (as geoipupdate)."""
    tmp = target.with_name(target.name + ".download")
    tmp.write_bytes(content)
    _stamp[0] += 1
    os.utime(tmp, ns=(_stamp[0] * 10**9, _stamp[0] * 10**9))
    os.replace(tmp, target)


def test_no_label_carries_an_address_path_account_or_subdivision(
    unique: str, scrape: Any, value: Any
) -> None:
    eng = engine(
        {"name": f"{unique}-eng", "action": "block", "regions": ["GB-ENG"]},
        {"name": f"{unique}-wa", "action": "warn", "regions": ["US-WA"], "paths": ["/v1/*"]},
        accounts={},
        exempt={"paths": ["/health"]},
        client_ip={"trusted_proxies": ["10.0.0.0/8"]},
    )
    addresses = [GB, US, CN, SE, RU, "10.1.2.3", "192.168.7.7", "2001:db8::1", "not-an-ip"]
    paths = ["/v1/models", "/health", "/secret/a1b2c3", "/"]
    accounts = [None, Account(id="org_8Hq2xyz", home_country="US")]
    for ip in addresses:
        for path in paths:
            for account in accounts:
                eng.decide(
                    RequestInfo(peer="10.9.9.9", headers=[("x-forwarded-for", ip)], path=path),
                    account=account,
                )
                eng.decide(req(ip, path), account=account)
    samples = scrape()
    assert any(s.labels.get("rule") == f"{unique}-eng" for s in samples)
    assert any(s.labels.get("rule") == f"{unique}-wa" for s in samples)
    secrets = [*addresses, "10.9.9.9", *paths[:3], "org_8Hq2xyz", "GB-ENG", "US-WA"]
    for sample in samples:
        for name, label in sample.labels.items():
            for secret in secrets:
                assert secret not in label, f"{sample.name}{{{name}={label!r}}} shows {secret!r}"
        # Only the label names DESIGN gives, whatever was asked.
        assert set(sample.labels) <= {
            "action",
            "enforced",
            "reason",
            "rule",
            "country",
            "db",
            "result",
            "kind",
        }
