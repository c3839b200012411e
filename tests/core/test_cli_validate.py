"""`geofence validate` on real MaxMind test databases and fixtures, in process and as a user runs
it (subprocesses, real pipes, a real Redis server); and `geofence check`'s explanation of every
kind of condition."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from redis_servers import free_port, redis_server
from tests_support import ANON_DB, ASN_DB, CITY_DB, FIXTURES, UA_CITY_DB

from geofence import cli, load_policy
from geofence.cli._validate import current, never_decides, phases, span, stamp, timeline

COMMAND = [sys.executable, "-m", "geofence"]
BROKEN_PIPE = 141
IPV4_ONLY_DB = str(FIXTURES / "GeoIP2-City-IPv4-only.mmdb")
FIXTURE_BUILT = "2023-11-14T22:13:20Z"  # tests/data/fixtures/build_fixtures.py BUILD_EPOCH
MAXMIND_BUILT = "2026-02-04T22:49:29Z"  # MaxMind's test databases (metadata build_epoch)


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


DATED = f"""
[geoip]
country_db = "{CITY_DB}"
reload_interval = 0

[[rules]]
name = "unsupported-regions"
action = "block"
regions = ["CN", "RU"]
paths = ["/v1/*"]
warn_from = 2024-06-25T00:00:00Z
enforce_from = 2024-07-09T00:00:00Z

[[rules]]
name = "england"
action = "block"
status = 403
regions = ["GB-ENG"]
enforce_from = 2024-08-01T00:00:00Z

[[rules]]
name = "posts"
action = "warn"
regions = ["*"]
methods = ["POST"]
mode = "report"
"""


def test_the_whole_report_of_a_dated_policy_in_its_grace_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(tmp_path, DATED)
    status, out, err = run_here(capsys, "validate", "--config", config, "--at", "2024-07-01T12:00Z")
    assert (status, err) == (0, "")
    assert out == (
        f"policy     {config}: mode enforce, default allow, on_error allow\n"
        "at         2024-07-01T12:00Z (--at)\n"
        "databases\n"
        f"  geoip.country_db  GeoIP2-City {CITY_DB!r}\n"
        f"    built     {MAXMIND_BUILT}, 583 days after 2024-07-01T12:00Z\n"
        "    tree      1547 nodes, 28-bit records, IPv4 and IPv6, subdivisions\n"
        "    reload    never (geoip.reload_interval = 0)\n"
        "    lookups   81.2.69.142 -> GB (GB-ENG); 2a02:d0c0::1 -> RU\n"
        "rules (first match wins)\n"
        "  rules[0] unsupported-regions: block, HTTP 451\n"
        "     when    regions CN, RU; paths /v1/*\n"
        "     phases  off until 2024-06-25T00:00Z -> warn (now) until 2024-07-09T00:00Z -> "
        "enforce\n"
        "     next    enforce from 2024-07-09T00:00Z (in 7 days)\n"
        "  rules[1] england: block, HTTP 403\n"
        "     when    regions GB-ENG\n"
        "     phases  off (now) until 2024-08-01T00:00Z -> enforce\n"
        "     next    enforce from 2024-08-01T00:00Z (in 30 days)\n"
        "  rules[2] posts: warn, report mode (a dry run: logged as would-block, never enforced)\n"
        "     when    regions *; methods POST\n"
        "     phases  warn (now)\n"
        "accounts   none: accounts change no decision\n"
        "OK: the policy loads, its databases answer, nothing needs attention\n"
    )


@pytest.mark.parametrize(
    ("at", "first", "second"),
    [
        (
            "2024-06-24T23:59:59Z",
            "off (now) until 2024-06-25T00:00Z -> warn until 2024-07-09T00:00Z -> enforce",
            "off (now) until 2024-08-01T00:00Z -> enforce",
        ),
        (
            "2024-06-25T00:00:00Z",  # half-open: at warn_from it warns
            "off until 2024-06-25T00:00Z -> warn (now) until 2024-07-09T00:00Z -> enforce",
            "off (now) until 2024-08-01T00:00Z -> enforce",
        ),
        (
            "2024-07-09T02:00:00+02:00",  # exactly enforce_from, written in another zone
            "off until 2024-06-25T00:00Z -> warn until 2024-07-09T00:00Z -> enforce (now)",
            "off (now) until 2024-08-01T00:00Z -> enforce",
        ),
        (
            "2025-01-01T00:00:00Z",
            "off until 2024-06-25T00:00Z -> warn until 2024-07-09T00:00Z -> enforce (now)",
            "off until 2024-08-01T00:00Z -> enforce (now)",
        ),
    ],
)
def test_timeline_marks_now_at_each_instant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, at: str, first: str, second: str
) -> None:
    config = write(tmp_path, DATED)
    status, out, _ = run_here(capsys, "validate", "--config", config, "--at", at)
    assert status == 0
    shown = [line.removeprefix("     phases  ") for line in out.splitlines() if "phases" in line]
    assert shown == [first, second, "warn (now)"]
    # The same through --json.
    status, out, _ = run_here(capsys, "validate", "--config", config, "--at", at, "--json")
    rules = json.loads(out)["rules"]
    assert [r["phase_now"] for r in rules] == [now_in(first), now_in(second), "warn"]


def now_in(shown: str) -> str:
    """The phase marked (now) in a timeline."""
    return next(p for p in shown.split(" -> ") if "(now)" in p).split(" ", 1)[0]


def test_next_change_counts_down_to_the_date(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(tmp_path, DATED)
    _, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2024-07-08T22:30:00Z")
    assert "     next    enforce from 2024-07-09T00:00Z (in 1 hour)" in out
    _, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2024-06-24T23:59:00Z")
    assert "     next    warn from 2024-06-25T00:00Z (in 1 minute)" in out
    # Enforcing for good: nothing comes next.
    _, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2030-01-01T00:00:00Z")
    assert "     next    " not in out


def rule(**fields: Any) -> Any:
    """One compiled RulePolicy, through the loader (the only maker of a policy)."""
    fields.setdefault("name", "r")
    fields.setdefault("action", "block")
    fields.setdefault("regions", ["CN"])
    return load_policy({"rules": [fields]}).rules[0]


def test_phases_of_every_kind_of_rule() -> None:
    def shown(**fields: Any) -> str:
        found = phases(rule(**fields))
        return timeline(found, current(found, datetime(2024, 7, 1, tzinfo=timezone.utc)))

    w, e = "2024-06-25T00:00:00Z", "2024-07-09T00:00:00Z"
    assert shown() == "enforce (now)"
    assert shown(action="warn") == "warn (now)"
    assert shown(action="allow") == "allow (now)"
    assert shown(enforce_from=e) == "off (now) until 2024-07-09T00:00Z -> enforce"
    assert shown(warn_from=w, enforce_from=e) == (
        "off until 2024-06-25T00:00Z -> warn (now) until 2024-07-09T00:00Z -> enforce"
    )
    # A warn rule's grace window warns, as it does afterwards: one phase.
    assert shown(action="warn", warn_from=w, enforce_from=e) == (
        "off until 2024-06-25T00:00Z -> warn (now)"
    )
    assert shown(action="allow", enforce_from=e) == "off (now) until 2024-07-09T00:00Z -> allow"


def test_how_times_are_shown() -> None:
    assert stamp(datetime(2024, 6, 25, tzinfo=timezone.utc)) == "2024-06-25T00:00Z"
    assert stamp(datetime(2024, 6, 25, 1, 2, 3, tzinfo=timezone.utc)) == "2024-06-25T01:02:03Z"
    assert [span(s) for s in (0, 1, 59, 60, 3599, 7200, 86_400, 86_400 * 30.5)] == [
        "0 seconds", "1 second", "59 seconds", "1 minute", "59 minutes", "2 hours", "1 day",
        "30 days",
    ]  # fmt: skip


# -- databases -----------------------------------------------------------------------------------


def test_city_anonymous_and_asn_databases(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        f'[geoip]\ncountry_db = "{CITY_DB}"\nanonymous_db = "{ANON_DB}"\nasn_db = "{ASN_DB}"\n'
        'max_age = "400d"\n'
        '[[rules]]\nname = "vpn"\naction = "block"\nanonymizers = ["vpn"]\n'
        '[[rules]]\nname = "att"\naction = "warn"\nasns = [7018]\n',
    )
    status, out, err = run_here(capsys, "validate", "--config", config, "--at", "2026-03-01T00:00Z")
    assert (status, err) == (0, "")
    databases = out.split("databases\n")[1].split("rules (first match wins)")[0]
    assert databases == (
        f"  geoip.country_db  GeoIP2-City {CITY_DB!r}\n"
        f"    built     {MAXMIND_BUILT}, 24 days old (max_age 400d: fresh)\n"
        "    tree      1547 nodes, 28-bit records, IPv4 and IPv6, subdivisions\n"
        "    reload    a replaced file is picked up within 1m\n"
        "    lookups   81.2.69.142 -> GB (GB-ENG); 2a02:d0c0::1 -> RU\n"
        f"  geoip.anonymous_db  GeoIP2-Anonymous-IP {ANON_DB!r}\n"
        f"    built     {MAXMIND_BUILT}, 24 days old (max_age 400d: fresh)\n"
        "    tree      629 nodes, 28-bit records, IPv4 and IPv6, no subdivisions\n"
        "    reload    a replaced file is picked up within 1m\n"
        "    lookups   1.2.0.1 -> vpn; abcd:1000::1 -> public_proxy\n"
        f"  geoip.asn_db  GeoLite2-ASN {ASN_DB!r}\n"
        f"    built     {MAXMIND_BUILT}, 24 days old (max_age 400d: fresh)\n"
        "    tree      1341 nodes, 28-bit records, IPv4 and IPv6, no subdivisions\n"
        "    reload    a replaced file is picked up within 1m\n"
        "    lookups   12.81.92.1 -> AS7018; 2600:6000::1 -> AS237\n"
    )
    assert "     when    anonymizers vpn\n" in out and "     when    asns AS7018\n" in out


def test_an_ipv4_only_database_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path, f'[geoip]\ncountry_db = "{IPV4_ONLY_DB}"\nreload_interval = 0\n')
    status, out, _ = run_here(capsys, "validate", "--config", config, "--json")
    assert status == 0
    (db,) = json.loads(out)["databases"]
    assert (db["ip_version"], db["type"], db["subdivisions"]) == (4, "GeoIP2-City", True)
    assert db["smoke_lookups"][1] == {
        "ip": "2a02:d0c0::1",
        "answer": "not in the database",
        "error": None,
    }
    _, out, _ = run_here(capsys, "validate", "--config", config)
    assert "IPv4 only (IPv6 clients are not found)" in out


def test_a_database_older_than_max_age_is_stale_by_the_clock(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Built in 2023: older than 30 days by the real clock, whenever this runs.
    config = write(tmp_path, f'[geoip]\ncountry_db = "{UA_CITY_DB}"\nmax_age = "30d"\n')
    status, out, err = run_here(capsys, "validate", "--config", config)
    assert status == 1
    assert err == ""
    age_days = datetime.now(timezone.utc) - datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert f"built     {FIXTURE_BUILT}, " in out and "(max_age 30d: STALE)" in out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        f"WARNING: geoip.country_db {UA_CITY_DB!r} is stale: built {FIXTURE_BUILT}, "
        f"{span(age_days.total_seconds())} old, more than geoip.max_age 30d; update it "
        "(geoipupdate)"
    ]
    assert "OK:" not in out
    status, out, _ = run_here(capsys, "validate", "--config", config, "--json")
    doc = json.loads(out)
    assert status == 1
    assert doc["ok"] is False
    assert doc["warnings"] == [w.removeprefix("WARNING: ") for w in warnings]
    (db,) = doc["databases"]
    assert (db["stale"], db["max_age_seconds"], db["built"]) == (
        True,
        30 * 86_400,
        "2023-11-14T22:13:20+00:00",
    )
    assert db["age_seconds"] > 30 * 86_400


def test_age_is_measured_at_the_at_time(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path, f'[geoip]\ncountry_db = "{UA_CITY_DB}"\nmax_age = "30d"\n')
    # 30 days after the build, to the second: not older than max_age yet.
    status, out, _ = run_here(
        capsys, "validate", "--config", config, "--at", "2023-12-14T22:13:20Z"
    )
    assert status == 0
    assert f"    built     {FIXTURE_BUILT}, 30 days old (max_age 30d: fresh)\n" in out
    status, out, _ = run_here(
        capsys, "validate", "--config", config, "--at", "2023-12-14T22:13:21Z"
    )
    assert status == 1
    assert "(max_age 30d: STALE)" in out


def build_db(path: Path, build_epoch: int) -> str:
    """A small GeoIP2-Country database made now, with the given metadata build date."""

    class Writer(MMDBWriter):  # type: ignore[misc]
        def _build_meta(self) -> dict[str, Any]:
            meta: dict[str, Any] = super()._build_meta()
            meta["build_epoch"] = build_epoch
            return meta

    writer = Writer(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(IPSet(["2a02:d0c0::/32"]), {"country": {"iso_code": "RU"}})
    writer.to_db_file(str(path))
    return str(path)


def test_a_freshly_written_file_with_an_old_build_date_is_stale(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The file's own date (mtime) is today: the age comes from the metadata, as DESIGN says.
    db = build_db(tmp_path / "old.mmdb", build_epoch=1_577_836_800)  # 2020-01-01
    config = write(tmp_path, f'[geoip]\ncountry_db = "{db}"\nmax_age = 604800\n')
    status, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2020-01-09T00:00Z")
    assert status == 1
    assert "    built     2020-01-01T00:00Z, 8 days old (max_age 7d: STALE)\n" in out
    assert "    lookups   81.2.69.142 -> GB; 2a02:d0c0::1 -> RU\n" in out
    status, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2020-01-07T00:00Z")
    assert status == 0
    assert "    built     2020-01-01T00:00Z, 6 days old (max_age 7d: fresh)\n" in out


def test_a_database_without_a_build_date(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # libmaxminddb (the C reader) refuses such a file; the pure-Python reader opens it.
    db = build_db(tmp_path / "undated.mmdb", build_epoch=0)
    config = write(tmp_path, f'[geoip]\ncountry_db = "{db}"\nreader = "memory"\n')
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 0  # without max_age, nothing to check it against
    assert "    built     unknown: the file's metadata has no usable build date\n" in out
    config = write(tmp_path, f'[geoip]\ncountry_db = "{db}"\nreader = "memory"\nmax_age = "30d"\n')
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 1
    assert (
        f"WARNING: geoip.country_db {db!r} has no usable build date: its age cannot be "
        "checked against geoip.max_age 30d\n"
    ) in out


def test_a_build_date_no_calendar_holds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = build_db(tmp_path / "far.mmdb", build_epoch=2**62)
    config = write(tmp_path, f'[geoip]\ncountry_db = "{db}"\nmax_age = "30d"\n')
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 1
    assert "    built     unknown: the file's metadata has no usable build date\n" in out


def test_the_embedded_default_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from importlib.metadata import version

    config = write(tmp_path, '[geoip]\nmax_age = "30d"\n')
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 0  # max_age cannot apply to data without a date: said, not a failure
    assert out.split("rules")[0].split("databases\n")[1] == (
        f"  geoip.country_db  the embedded default (iptocc {version('iptocc')}: RIR allocation "
        "data)\n"
        "    built     not published by iptocc (its data is as old as the installed wheel); "
        "no subdivisions\n"
        "    max_age   does not apply: the embedded default has no build date\n"
        "    lookups   8.8.8.8 -> US; 2001:4860:4860::8888 -> US\n"
    )
    status, out, _ = run_here(capsys, "validate", "--config", config, "--json")
    (db,) = json.loads(out)["databases"]
    assert (db["embedded"], db["path"], db["data_version"]) == (True, None, version("iptocc"))


def test_without_config_the_example_policy(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_here(capsys, "validate")
    assert (status, err) == (0, "")
    assert out.startswith("policy     the example policy: mode enforce, default allow")
    assert "  rules[0] unsupported-regions: block, HTTP 451\n" in out
    # The example's second rule is always in its grace window (placed around today).
    assert "  rules[1] new-restrictions: block, HTTP 451\n" in out
    assert " -> warn (now) until " in out


# -- JSON ---------------------------------------------------------------------------------------


def test_json_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(
        tmp_path, DATED + '\n[accounts]\nstore = "memory://"\n[strikes]\nthreshold = 3\n'
    )
    status, out, err = run_here(
        capsys, "validate", "--config", config, "--at", "2024-07-01T12:00:00Z", "--json"
    )
    assert (status, err) == (0, "")
    doc = json.loads(out)
    assert set(doc) == {
        "ok", "policy", "mode", "default", "on_error", "at", "databases", "rules", "accounts",
        "strikes", "warnings",
    }  # fmt: skip
    assert (doc["ok"], doc["policy"], doc["at"], doc["warnings"]) == (
        True,
        config,
        "2024-07-01T12:00:00+00:00",
        [],
    )
    (db,) = doc["databases"]
    assert set(db) == {
        "setting", "embedded", "path", "type", "title", "built", "age_seconds",
        "max_age_seconds", "stale", "ip_version", "node_count", "record_size", "subdivisions",
        "follows_file", "data_version", "smoke_lookups",
    }  # fmt: skip
    assert (db["setting"], db["type"], db["node_count"], db["built"]) == (
        "geoip.country_db",
        "GeoIP2-City",
        1547,
        "2026-02-04T22:49:29+00:00",
    )
    first = doc["rules"][0]
    assert set(first) == {
        "index", "name", "action", "status", "mode", "conditions", "warn_from", "enforce_from",
        "account_grace_seconds", "phases", "phase_now", "next_change", "never_decides",
    }  # fmt: skip
    assert first["phases"] == [
        {"phase": "off", "until": "2024-06-25T00:00:00+00:00"},
        {"phase": "warn", "until": "2024-07-09T00:00:00+00:00"},
        {"phase": "enforce", "until": None},
    ]
    assert (first["phase_now"], first["next_change"]) == ("warn", "2024-07-09T00:00:00+00:00")
    assert first["conditions"]["regions"] == ["CN", "RU"]
    assert first["conditions"]["paths"] == ["/v1/*"]
    assert doc["rules"][2]["mode"] == "report"
    assert doc["accounts"] == {
        "store": "memory://",
        "shared": False,
        "reachable": True,
        "error": None,
        "key_prefix": "geofence",
        "timeout_seconds": 0.05,
        "refresh_seconds": 5.0,
        "on_store_error": "local",
    }
    assert doc["strikes"]["threshold"] == 3


# -- rules that can never decide ------------------------------------------------------------------


def never(*rules: dict[str, Any]) -> list[str | None]:
    policy = load_policy({"rules": [{"name": f"r{i}", **r} for i, r in enumerate(rules)]})
    return [never_decides(policy.rules, i) for i in range(len(policy.rules))]


SHADOW = "never decides: every request it matches is decided first by rules[0] 'r0'"


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ({"regions": ["GB"]}, {"regions": ["GB-ENG"]}, True),
        ({"regions": ["GB-ENG"]}, {"regions": ["GB"]}, False),
        ({"regions": ["*"]}, {"regions": ["CN", "RU"]}, True),
        ({"regions": ["*"]}, {"regions": ["unknown"]}, False),
        ({}, {"regions": ["CN"], "paths": ["/v1/*"]}, True),  # the first catches everyone
        ({"regions": ["CN"]}, {}, False),
        ({"paths": ["/v1/*"]}, {"paths": ["/v1/models/*", "/v1/chat"]}, True),
        ({"paths": ["/v1/*"]}, {"paths": ["/v1"]}, False),
        ({"paths": ["/v1/models"]}, {"paths": ["/v1/*"]}, False),
        ({"methods": ["GET"]}, {"methods": ["HEAD"]}, True),
        ({"methods": ["POST"]}, {"methods": ["POST", "PUT"]}, False),
        ({"hosts": ["*.example.com"]}, {"hosts": ["api.example.com"]}, True),
        ({"hosts": ["api.example.com"]}, {"hosts": ["*.example.com"]}, False),
        ({"regions": ["UA"], "except_regions": ["UA-43"]}, {"regions": ["UA-14"]}, False),
        (
            {"regions": ["UA"], "except_regions": ["UA-43"]},
            {"regions": ["UA"], "except_regions": ["UA-43", "UA-14"]},
            True,
        ),
        # Dates: the earlier rule must be in force whenever the later one is.
        ({"enforce_from": "2024-07-09T00:00:00Z"}, {}, False),
        (
            {"warn_from": "2024-06-01T00:00:00Z", "enforce_from": "2024-07-09T00:00:00Z"},
            {"enforce_from": "2024-06-01T00:00:00Z"},
            True,
        ),
        ({}, {"enforce_from": "2024-07-09T00:00:00Z"}, True),
        # A dry run decides nothing: later rules still decide.
        ({"mode": "report"}, {"regions": ["CN"]}, False),
    ],
)
def test_a_rule_behind_a_wider_one_never_decides(
    earlier: dict[str, Any], later: dict[str, Any], shadowed: bool
) -> None:
    # (A block rule without conditions is refused at load: warn and allow rules here.)
    found = never({"action": "warn", **earlier}, {"action": "allow", **later})
    assert found == [None, SHADOW if shadowed else None]


def test_a_rule_whose_regions_are_all_excepted_never_matches(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert never({"action": "block", "regions": ["UA-43"], "except_regions": ["UA"]}) == [
        "can never match: every region it names is in its except_regions"
    ]
    config = write(
        tmp_path,
        '[[rules]]\nname = "all"\naction = "warn"\n'
        '[[rules]]\nname = "cn"\naction = "block"\nregions = ["CN"]\n',
    )
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 1
    assert (
        "     problem never decides: every request it matches is decided first by rules[0] 'all'\n"
        in out
    )
    assert out.endswith(
        "WARNING: rules[1] 'cn' never decides: every request it matches is decided first by "
        "rules[0] 'all'\n"
    )


# -- accounts ------------------------------------------------------------------------------------


def test_memory_store_is_this_process_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        '[accounts]\nstore = "memory://"\n[strikes]\nthreshold = 3\nwindow = "1h"\n'
        'suspend_for = 0\n[[rules]]\nname = "cn"\naction = "block"\nregions = ["CN"]\n'
        'account_grace = "14d"\n',
    )
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 0
    assert "  rules[0] cn: block, HTTP 451, account grace 14d\n" in out
    assert out.split("accounts   ")[1] == (
        "store memory:// (this process only: each app process keeps its own account state)\n"
        "           reachable\n"
        "           key_prefix 'geofence', timeout 50ms, refresh 5s, on_store_error local\n"
        "strikes    3 strikes (enforced block) within 1h -> suspend until cleared (geofence "
        "accounts clear), HTTP 403\n"
        "OK: the policy loads, its databases answer, nothing needs attention\n"
    )


def test_an_unreachable_store_needs_attention(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uri = f"redis://127.0.0.1:{free_port()}/0"
    config = write(tmp_path, f'[accounts]\nstore = "{uri}"\n[strikes]\naction = "flag"\n')
    status, out, _ = run_here(capsys, "validate", "--config", config, "--json")
    assert status == 1
    doc = json.loads(out)
    accounts = doc["accounts"]
    assert (accounts["store"], accounts["shared"], accounts["reachable"]) == (uri, True, False)
    assert "onnect" in accounts["error"]
    assert doc["warnings"] == [
        f"accounts.store {uri} is unreachable ({accounts['error']}); requests that need it get "
        "on_store_error = 'local'"
    ]
    assert doc["strikes"]["action"] == "flag"


def test_a_reachable_redis_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        config = write(tmp_path, f'[accounts]\nstore = "{server.url}"\n')
        status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 0
    assert f"accounts   store {server.url} (shared by every process that uses it)\n" in out
    assert "           reachable\n" in out


# -- errors and pipes ----------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "--config", "/nonexistent/geofence.toml"], "/nonexistent/geofence.toml"),
        (["validate", "--at", "2024-07-09T00:00:00"], "has no zone"),
        (["validate", "--frobnicate"], "usage"),
    ],
)
def test_usage_and_config_errors_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_database_is_the_config_error(tmp_path: Path) -> None:
    config = write(tmp_path, f'[geoip]\ncountry_db = "{ASN_DB}"\n')
    result = run("validate", "--config", config)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"geofence: geoip.country_db: {ASN_DB!r} is a GeoLite2-ASN")
    assert result.stderr.count("\n") == 1


def test_exit_status_1_as_a_user_sees_it(tmp_path: Path) -> None:
    config = write(tmp_path, f'[geoip]\ncountry_db = "{UA_CITY_DB}"\nmax_age = "30d"\n')
    result = run("validate", "--config", config)
    assert result.returncode == 1
    assert "WARNING: geoip.country_db" in result.stdout


@pytest.mark.parametrize("args", [["validate"], ["validate", "--json"], ["validate", "--help"]])
def test_a_closed_pipe_ends_validate_quietly(args: list[str]) -> None:
    read_end, write_end = os.pipe()
    process = subprocess.Popen([*COMMAND, *args], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == BROKEN_PIPE


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
def test_validate_piped_into_head(tmp_path: Path) -> None:
    config = write(tmp_path, DATED)
    command = subprocess.Popen(
        [*COMMAND, "validate", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(["head", "-n", "1"], stdin=command.stdout, stdout=subprocess.PIPE)
    assert command.stdout is not None
    command.stdout.close()
    shown, _ = head.communicate(timeout=60)
    _, err = command.communicate(timeout=60)
    assert shown.decode().startswith("policy     ")
    assert err == b""
    assert command.returncode in (0, BROKEN_PIPE)


# -- geofence check: why each earlier rule did not match, for every kind of condition ------------

CHECK_DBS = (
    f'[geoip]\ncountry_db = "{CITY_DB}"\nanonymous_db = "{ANON_DB}"\nasn_db = "{ASN_DB}"\n'
    'reload_interval = 0\n[accounts]\nstore = "memory://"\n'
)
LAST = '[[rules]]\nname = "last"\naction = "warn"\nregions = ["*", "unknown"]\n'
SE, US, CN, VPN = "89.160.20.112", "216.160.83.56", "175.16.199.1", "1.2.0.1"
AT = ["--at", "2024-07-01T00:00:00Z"]
ACCOUNT = ["--account", "org_1", "--home-country"]


@pytest.mark.parametrize(
    ("rule_toml", "ip", "args", "why"),
    [
        ('regions = ["CN", "RU"]', SE, [], "SE / SE-E is not in its regions: CN, RU"),
        ('regions = ["CN"]', VPN, [], "a client without a country is not in its regions: CN"),
        (
            'regions = ["US"]\nexcept_regions = ["US-WA"]',
            US,
            [],
            "US / US-WA is in its except_regions: US-WA",
        ),
        ('anonymizers = ["tor"]', SE, [], "the network (no anonymizer) is none of tor"),
        ('anonymizers = ["tor", "hosting"]', VPN, [], "the network (vpn) is none of hosting, tor"),
        ("asns = [1221]", SE, [], "AS29518 is none of AS1221"),
        ("asns = [1221]", CN, [], "no autonomous system number for the client (wanted AS1221)"),
        (
            'hosts = ["*.example.com"]',
            SE,
            ["--host", "www.example.org:8443"],
            "host 'www.example.org' matches none of *.example.com",
        ),
        ('hosts = ["*.example.com"]', SE, [], "the request has no host"),
        ('paths = ["/v1/*"]', SE, ["--path", "/v1"], "path '/v1' matches none of its paths: /v1/*"),
        (
            'methods = ["GET", "POST"]',
            SE,
            ["--method", "delete"],
            "method DELETE is not one of GET, HEAD, POST",
        ),
        (
            'home_regions = ["IR", "CU"]',
            SE,
            [*ACCOUNT, "GB"],
            "home country GB is not in its home_regions: IR, CU",
        ),
        ('home_regions = ["IR"]', SE, [], "no account with a home country"),
        (
            "home_mismatch = true",
            SE,
            [*ACCOUNT, "SE"],
            "the request's country is the home country SE",
        ),
        ("home_mismatch = true", VPN, [*ACCOUNT, "GB"], "a client without a country"),
        ("home_mismatch = true", SE, ["--account", "org_1"], "no account with a home country"),
        (
            'regions = ["SE"]\nwarn_from = 2030-01-01T00:00:00Z\n'
            "enforce_from = 2030-02-01T00:00:00Z",
            SE,
            [],
            "off until 2030-01-01T00:00Z (its warn_from): not in force yet",
        ),
        (
            'regions = ["SE"]\nenforce_from = 2024-07-01T00:00:01Z',
            SE,
            [],
            "off until 2024-07-01T00:00:01Z (its enforce_from): not in force yet",
        ),
        ('regions = ["SE"]\nmode = "report"', SE, [], "matched, but is in report mode (a dry run)"),
    ],
)
def test_check_says_why_a_rule_of_each_kind_did_not_match(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    rule_toml: str,
    ip: str,
    args: list[str],
    why: str,
) -> None:
    action = "warn" if "home_mismatch" in rule_toml else "block"
    config = write(
        tmp_path, f'{CHECK_DBS}[[rules]]\nname = "kind"\naction = "{action}"\n{rule_toml}\n{LAST}'
    )
    status, out, err = run_here(capsys, "check", ip, "--config", config, *AT, *args)
    assert (status, err) == (0, "")
    assert f"  tried      rule 'kind': {why}\n" in out
    assert "  rule       last (always)\n" in out
    status, out, _ = run_here(capsys, "check", ip, "--config", config, *AT, *args, "--json")
    doc = json.loads(out)
    (passed,) = doc["rules_passed"]
    assert (doc["rule"], passed["rule"]) == ("last", "kind")
    # JSON keeps the engine's words; the text adds the list they name, or the start date.
    assert passed["why"] == why.split(": ", maxsplit=1)[0] or why.startswith("off until ")
    if why.startswith("off until "):
        assert passed["why"].startswith("not in force yet (from ")


def test_check_marks_the_dry_run_that_matched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        f'{CHECK_DBS}[[rules]]\nname = "dry"\naction = "block"\nregions = ["SE"]\n'
        f'mode = "report"\n{LAST}',
    )
    _, out, _ = run_here(capsys, "check", SE, "--config", config, *AT)
    assert out.splitlines()[0] == "WARN (enforced)"
    assert "  dry run    rule 'dry' is in report mode and matched\n" in out


def test_check_cuts_a_long_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(
        tmp_path, f'{CHECK_DBS}[[rules]]\nname = "eu"\naction = "block"\nregions = ["@eu"]\n'
    )
    _, out, _ = run_here(capsys, "check", US, "--config", config, *AT, "--json")
    (passed,) = json.loads(out)["rules_passed"]
    assert passed["why"] == "US / US-WA is not in its regions"
    _, out, _ = run_here(capsys, "check", US, "--config", config, *AT)
    shown = ", ".join(load_policy(config).rules[0].regions[:12])
    assert (
        f"  tried      rule 'eu': US / US-WA is not in its regions: {shown}, ... (27 in all)\n"
    ) in out


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("report", "mode report: nothing is blocked or warned; matches are logged as would-block"),
        ("off", "mode off: the policy decides nothing (every request is allowed, reason off)"),
    ],
)
def test_a_policy_not_enforcing_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str, note: str
) -> None:
    config = write(tmp_path, f'mode = "{mode}"\n' + DATED)
    status, out, _ = run_here(capsys, "validate", "--config", config, "--at", "2024-07-01T12:00Z")
    assert status == 0
    assert out.splitlines()[:3] == [
        f"policy     {config}: mode {mode}, default allow, on_error allow",
        f"           {note}",
        "at         2024-07-01T12:00Z (--at)",
    ]
    _, out, _ = run_here(capsys, "validate", "--config", config, "--json")
    assert json.loads(out)["mode"] == mode


def test_a_failed_smoke_lookup_needs_attention(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Loads (its first records are sound), but 1.2.0.1's record is malformed.
    bad = str(FIXTURES / "GeoIP2-Anonymous-IP-bad-record.mmdb")
    config = write(
        tmp_path,
        f'[geoip]\ncountry_db = "{UA_CITY_DB}"\nanonymous_db = "{bad}"\n'
        '[[rules]]\nname = "vpn"\naction = "warn"\nanonymizers = ["vpn"]\n',
    )
    status, out, _ = run_here(capsys, "validate", "--config", config)
    assert status == 1
    error = (
        f"GeoIP2-Anonymous-IP database {bad!r}: record for 1.2.0.1: malformed record: "
        "is_anonymous_vpn is 'yes', not a boolean"
    )
    assert f"    lookups   1.2.0.1 -> FAILED: {error}; abcd:1000::1 -> no anonymizer\n" in out
    assert out.endswith(
        f"WARNING: geoip.anonymous_db: the smoke lookup of 1.2.0.1 failed: {error}\n"
    )
