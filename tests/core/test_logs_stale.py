"""geoip.max_age: a database older than it is a WARNING at load, after each reload and once a
day while it stays stale. Real .mmdb files whose build date the test sets (mmdb-writer); the
engine's injected clock drives both the reload checks and the databases' age."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from geofence import Engine, Event, RequestInfo

DAY = 86_400.0
GB = "81.2.69.142"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def city_db(path: Path, built: float) -> Path:
    """A small GeoIP2-City database built at Unix time ``built``, renamed into ``path``."""

    class Writer(MMDBWriter):  # type: ignore[misc]
        def _build_meta(self) -> dict[str, Any]:
            meta: dict[str, Any] = super()._build_meta()
            meta["build_epoch"] = int(built)
            return meta

    writer = Writer(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}, "subdivisions": []}
    )
    tmp = path.with_name(path.name + ".download")
    writer.to_db_file(str(tmp))
    stamp = int(built) % 1_000_000 + 1_600_000_000  # an mtime of its own for each file
    os.utime(tmp, (stamp, stamp))
    os.replace(tmp, path)
    return path


def stale_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "geofence" and r.levelno == logging.WARNING and "is stale" in r.getMessage()
    ]


def engine(path: Path, clock: Clock, reload_interval: int = 60, **extra: Any) -> Engine:
    return Engine.from_config(
        {
            "geoip": {
                "country_db": str(path),
                "max_age": "30d",
                "reload_interval": reload_interval,
            },
            **extra,
        },
        clock=clock,
    )


def test_a_stale_database_is_a_warning_at_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = city_db(tmp_path / "City.mmdb", time.time() - 40 * DAY)
    engine(path, Clock())
    (warning,) = stale_warnings(caplog)
    message = warning.getMessage()
    assert message.startswith("geoip.country_db: GeoIP2-City database ")
    assert " is stale at load: built " in message
    assert ", 40 days ago, more than geoip.max_age (30d)" in message
    assert "geofence" not in message.split(":", 1)[0]
    fields = warning.geofence  # type: ignore[attr-defined]
    assert fields["db"] == "country" and fields["path"] == str(path)
    assert fields["max_age_seconds"] == 30 * DAY
    assert 40 * DAY - 60 <= fields["age_seconds"] <= 40 * DAY + 60


def test_a_fresh_database_is_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine(city_db(tmp_path / "City.mmdb", time.time() - 29 * DAY), Clock())
    engine(city_db(tmp_path / "Other.mmdb", time.time() - 40 * DAY), Clock())
    assert len(stale_warnings(caplog)) == 1  # the second one only
    caplog.clear()
    no_limit = Engine.from_config(
        {"geoip": {"country_db": str(tmp_path / "Other.mmdb")}}, clock=Clock()
    )
    assert no_limit.decide(RequestInfo(peer=GB)).country == "GB"
    assert stale_warnings(caplog) == []  # without max_age nothing is ever stale


def test_growing_stale_while_running_is_warned_once_a_day(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    fence = engine(city_db(tmp_path / "City.mmdb", time.time() - 10 * DAY), clock)
    request = RequestInfo(peer=GB)
    fence.decide(request)
    assert stale_warnings(caplog) == []
    clock.now += 19 * DAY  # 29 days old: still fresh
    fence.decide(request)
    assert stale_warnings(caplog) == []
    clock.now += 1 * DAY + 120  # 30 days and 2 minutes old, checked at the next poll
    fence.decide(request)
    (first,) = stale_warnings(caplog)
    assert " is stale still: built " in first.getMessage()
    # Polled every minute for almost a day: no more warnings.
    for _ in range(int(DAY // 60) - 2):
        clock.now += 60.0
        fence.decide(request)
    assert len(stale_warnings(caplog)) == 1
    clock.now += 120.0
    fence.decide(request)
    assert len(stale_warnings(caplog)) == 2
    assert ", 31 days ago" in stale_warnings(caplog)[1].getMessage()


def test_after_each_reload_the_new_file_is_judged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, events = Clock(), []
    path = city_db(tmp_path / "City.mmdb", time.time() - 40 * DAY)
    fence = Engine.from_config(
        {"geoip": {"country_db": str(path), "max_age": "30d", "reload_interval": 60}},
        clock=clock,
        on_event=events.append,
    )
    request = RequestInfo(peer=GB)
    assert len(stale_warnings(caplog)) == 1  # at load
    # Another old file: warned right after its reload, though the last warning is recent.
    city_db(path, time.time() - 35 * DAY)
    clock.now += 60.0
    fence.decide(request)
    warnings = stale_warnings(caplog)
    assert len(warnings) == 2
    assert " is stale after reload: built " in warnings[1].getMessage()
    # A fresh file: no warning, now or a day later.
    city_db(path, time.time())
    clock.now += 60.0
    fence.decide(request)
    clock.now += DAY
    fence.decide(request)
    assert len(stale_warnings(caplog)) == 2
    reloads: list[Event] = [e for e in events if e.kind == "db_reloaded"]
    assert len(reloads) == 2
    assert reloads[1].detail["built"] is not None


def test_without_reload_checks_a_stale_database_is_still_warned_daily(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # reload_interval = 0: the engine polls its databases once a day for their age only.
    clock = Clock()
    fence = engine(city_db(tmp_path / "City.mmdb", time.time() - 40 * DAY), clock, 0)
    request = RequestInfo(peer=GB)
    assert len(stale_warnings(caplog)) == 1  # at load
    clock.now += DAY - 1.0
    fence.decide(request)
    assert len(stale_warnings(caplog)) == 1
    clock.now += 1.0
    fence.decide(request)
    warnings = stale_warnings(caplog)
    assert len(warnings) == 2 and " is stale still: built " in warnings[1].getMessage()
    assert ", 41 days ago" in warnings[1].getMessage()
    for _ in range(3):
        clock.now += DAY
        fence.decide(request)
    assert len(stale_warnings(caplog)) == 5


def test_without_max_age_and_reloads_nothing_is_polled(tmp_path: Path) -> None:
    fence = Engine.from_config(
        {
            "geoip": {
                "country_db": str(city_db(tmp_path / "City.mmdb", time.time())),
                "reload_interval": 0,
            }
        },
        clock=Clock(),
    )
    assert fence._poll_interval is None  # no per-request clock read for nothing


@pytest.mark.parametrize(
    ("seconds", "age", "setting"),
    [
        (30 * DAY, "30 days", "30d"),
        (DAY + 5, "1 day", "86405s"),
        (36 * 3600.0, "1 day", "36h"),
        (7200.0, "2 hours", "2h"),
        (90.0, "1 minute", "90s"),
        (59.0, "59 seconds", "59s"),
    ],
)
def test_ages_and_settings_are_written_plainly(seconds: float, age: str, setting: str) -> None:
    from geofence.geoip import _watch

    assert _watch._age(seconds) == age
    assert _watch._setting(seconds) == setting
