"""Engine events of every kind DESIGN names, from real databases: a file replaced on disk
(db_reloaded), a corrupt replacement (db_refused), a record that fails to decode (db_error),
and the request kinds (block, warn, would_block, would_warn). Time is an injected clock."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from tests_support import BAD_DATA, BAD_RECORD_DB, CITY_DB, UA_CITY_DB

import geofence
from geofence import Engine, Event, RequestInfo
from geofence._events import KINDS, REQUEST_KINDS
from geofence.geoip._databases import COUNTRY
from geofence.geoip._mmdb import open_mmdb, reader_mode

CORRUPT = BAD_DATA / "libmaxminddb" / "libmaxminddb-metadata-marker-only.mmdb"
BAD_ADDRESS = "216.160.83.56"  # its record in BAD_RECORD_DB has country iso_code 12345
GB = "81.2.69.142"  # GB in the City test database and in the UA fixture
CRIMEA = "31.43.1.1"  # not found in the City test database; UA-43 in the UA fixture


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_mtime = [1_600_000_000]


def install(source: str | Path, target: Path) -> None:
    """Replace ``target`` atomically (as geoipupdate does), with an mtime of its own."""
    tmp = target.with_name(target.name + ".download")
    shutil.copyfile(source, tmp)
    _mtime[0] += 1
    os.utime(tmp, (_mtime[0], _mtime[0]))
    os.replace(tmp, target)


def build_epoch(path: str | Path) -> int:
    return open_mmdb(str(path), COUNTRY, reader_mode("auto")).build_epoch


def engine(
    tmp_path: Path,
    clock: Clock,
    on_event: Callable[[Event], object] | None,
    *,
    source: str = CITY_DB,
    **extra: Any,
) -> tuple[Engine, Path]:
    target = tmp_path / "GeoIP2-City.mmdb"
    install(source, target)
    config: dict[str, Any] = {
        "geoip": {"country_db": str(target), "reload_interval": 60},
        "rules": [{"name": "no-ua", "action": "block", "regions": ["UA"]}],
        **extra,
    }
    return Engine.from_config(config, clock=clock, on_event=on_event), target


def db_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind.startswith("db_")]


def test_every_kind_is_documented() -> None:
    assert REQUEST_KINDS < KINDS
    assert {"db_reloaded", "db_refused", "db_error"} < KINDS


# -- db_reloaded --------------------------------------------------------------------------


def test_a_replaced_file_is_reloaded_and_the_event_says_which_and_when_built(
    tmp_path: Path,
) -> None:
    clock, events = Clock(), []
    fence, target = engine(tmp_path, clock, events.append)
    assert fence.decide(RequestInfo(peer=CRIMEA)).reason == "not_found"
    install(UA_CITY_DB, target)
    clock.now += 59.0
    assert fence.decide(RequestInfo(peer=CRIMEA)).reason == "not_found"  # not checked yet
    assert db_events(events) == []
    clock.now += 1.0
    decision = fence.decide(RequestInfo(peer=CRIMEA))
    assert (decision.action, decision.subdivisions) == ("block", ("UA-43",))
    (event,) = db_events(events)
    assert event.kind == "db_reloaded"
    assert event.decision is None and event.account is None and event.rule is None
    assert event.detail["db"] == "country"
    assert event.detail["key"] == "geoip.country_db"
    assert event.detail["path"] == str(target)
    assert event.detail["database_type"] == "GeoIP2-City"
    assert event.detail["description"] == f"GeoIP2-City database {str(target)!r}"
    assert event.detail["built"] == datetime.fromtimestamp(build_epoch(UA_CITY_DB), timezone.utc)
    assert event.detail["previous_built"] == datetime.fromtimestamp(
        build_epoch(CITY_DB), timezone.utc
    )
    assert event.at.tzinfo is not None
    # Checked again a minute later: the same file is not reloaded (nor announced) again.
    clock.now += 60.0
    fence.decide(RequestInfo(peer=CRIMEA))
    assert len(db_events(events)) == 1


def test_a_reload_is_noticed_on_cache_hits_too(tmp_path: Path) -> None:
    # Repeated requests are answered from the decision cache and make no lookup: the engine's
    # poll is what checks the file, and the event comes from there.
    clock, events = Clock(), []
    fence, target = engine(tmp_path, clock, events.append)
    request = RequestInfo(peer=GB)
    fence.decide(request)
    install(UA_CITY_DB, target)
    clock.now += 60.0
    fence.decide(request)
    assert [e.kind for e in db_events(events)] == ["db_reloaded"]


# -- db_refused ---------------------------------------------------------------------------


def test_a_corrupt_replacement_is_refused_once_and_the_old_file_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, events = Clock(), []
    fence, target = engine(tmp_path, clock, events.append)
    install(CORRUPT, target)
    clock.now += 60.0
    decision = fence.decide(RequestInfo(peer=GB))
    assert (decision.country, decision.reason) == ("GB", "default")
    (event,) = db_events(events)
    assert event.kind == "db_refused"
    assert event.detail["db"] == "country"
    assert event.detail["path"] == str(target)
    reason = event.detail["reason"]
    assert isinstance(reason, str) and reason
    assert any(reason in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    # The same refused file is not refused (announced) again at every check.
    for _ in range(3):
        clock.now += 60.0
        fence.decide(RequestInfo(peer="175.16.199.1"))
    assert len(db_events(events)) == 1
    # A good file after it is taken.
    install(UA_CITY_DB, target)
    clock.now += 60.0
    assert fence.decide(RequestInfo(peer=CRIMEA)).action == "block"
    assert [e.kind for e in db_events(events)] == ["db_refused", "db_reloaded"]


def test_a_city_database_replaced_by_a_country_one_is_refused(tmp_path: Path) -> None:
    clock, events = Clock(), []
    fence, target = engine(
        tmp_path,
        clock,
        events.append,
        rules=[{"name": "crimea", "action": "block", "regions": ["UA-43"]}],
    )
    install(Path(CITY_DB).with_name("GeoIP2-Country-Test.mmdb"), target)
    clock.now += 60.0
    fence.decide(RequestInfo(peer=GB))
    (event,) = db_events(events)
    assert event.kind == "db_refused"
    assert "subdivisions" in str(event.detail["reason"])


# -- db_error -----------------------------------------------------------------------------


def test_every_failed_lookup_is_an_event_while_the_log_line_is_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[Event] = []
    fence = Engine.from_config(
        {"geoip": {"country_db": BAD_RECORD_DB, "reload_interval": 0}},
        clock=Clock(),
        on_event=events.append,
    )
    for _ in range(5):
        assert fence.decide(RequestInfo(peer=BAD_ADDRESS)).reason == "db_error"
    assert [e.kind for e in events] == ["db_error"] * 5
    event = events[0]
    assert event.detail["db"] == "country"
    assert event.detail["key"] == "geoip.country_db"
    assert event.detail["description"] == f"GeoIP2-City database {BAD_RECORD_DB!r}"
    error = str(event.detail["error"])
    assert "12345" in error
    assert BAD_ADDRESS not in error and "<address>" in error  # no address in an event's detail
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "geofence"]
    assert len(logged) == 1


def test_db_error_of_the_anonymous_database_names_it() -> None:
    events: list[Event] = []
    anon_bad = str(Path(BAD_RECORD_DB).with_name("GeoIP2-Anonymous-IP-bad-record.mmdb"))
    fence = Engine.from_config(
        {
            "geoip": {"country_db": CITY_DB, "anonymous_db": anon_bad, "reload_interval": 0},
            "rules": [{"name": "vpn", "action": "block", "anonymizers": ["vpn"]}],
        },
        clock=Clock(),
        on_event=events.append,
    )
    assert fence.decide(RequestInfo(peer="1.2.0.1")).reason == "db_error"
    assert [(e.kind, e.detail["db"]) for e in events] == [("db_error", "anonymous")]


def test_without_receivers_a_failed_lookup_builds_no_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from geofence import _engine

    def boom(*args: object, **kwargs: object) -> Event:
        raise AssertionError("an event was built for nobody")

    monkeypatch.setattr(_engine, "failure_event", boom)
    fence = Engine.from_config(
        {"geoip": {"country_db": BAD_RECORD_DB, "reload_interval": 0}}, clock=Clock()
    )
    assert fence.decide(RequestInfo(peer=BAD_ADDRESS)).reason == "db_error"


# -- request kinds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "action", "kind"),
    [
        ("enforce", "block", "block"),
        ("enforce", "warn", "warn"),
        ("report", "block", "would_block"),
        ("report", "warn", "would_warn"),
    ],
)
def test_each_reported_request_is_an_event(mode: str, action: str, kind: str) -> None:
    events: list[Event] = []
    fence = Engine.from_config(
        {
            "mode": mode,
            "geoip": {"country_db": CITY_DB},
            "rules": [{"name": "cn", "action": action, "regions": ["CN"]}],
        },
        on_event=events.append,
    )
    request = RequestInfo(peer="175.16.199.1", path="/v1/models")
    decisions = [fence.decide(request) for _ in range(3)]  # the second and third are cached
    assert [e.kind for e in events] == [kind] * 3
    assert all(e.decision == d for e, d in zip(events, decisions, strict=True))
    assert events[0].rule == "cn"
    assert decisions[0].ref is not None and events[0].decision is not None
    assert events[0].decision.ref == decisions[0].ref


# -- callbacks that raise ---------------------------------------------------------------------


def test_a_raising_callback_never_reaches_a_request_for_any_database_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        seen.append(event.kind)
        raise RuntimeError(f"callback bug on {event.kind}")

    clock = Clock()
    fence, target = engine(tmp_path, clock, broken)
    install(CORRUPT, target)
    clock.now += 60.0
    assert fence.decide(RequestInfo(peer=GB)).country == "GB"
    install(UA_CITY_DB, target)
    clock.now += 60.0
    assert fence.decide(RequestInfo(peer=CRIMEA)).action == "block"
    failing = Engine.from_config(
        {"geoip": {"country_db": BAD_RECORD_DB, "reload_interval": 0}}, on_event=broken
    )
    assert failing.decide(RequestInfo(peer=BAD_ADDRESS)).reason == "db_error"
    assert seen == ["db_refused", "db_reloaded", "block", "db_error"]
    failures = [r for r in caplog.records if "on_event callback failed" in r.getMessage()]
    assert [r.exc_info is not None for r in failures] == [True] * 4


def test_events_do_not_keep_an_engine_alive(tmp_path: Path) -> None:
    import gc
    import weakref

    clock = Clock()
    fence, _ = engine(tmp_path, clock, lambda event: None)
    gone = weakref.ref(fence)
    del fence
    gc.collect()
    assert gone() is None


def test_event_is_public() -> None:
    assert geofence.Event is Event


def test_with_on_error_block_a_failed_lookup_is_a_db_error_then_a_block() -> None:
    events: list[Event] = []
    fence = Engine.from_config(
        {"on_error": "block", "geoip": {"country_db": BAD_RECORD_DB, "reload_interval": 0}},
        clock=Clock(),
        on_event=events.append,
    )
    for _ in range(2):
        decision = fence.decide(RequestInfo(peer=BAD_ADDRESS))
        assert (decision.action, decision.status, decision.reason) == ("block", 503, "db_error")
    assert [e.kind for e in events] == ["db_error", "block"] * 2
    assert events[1].decision is not None and events[1].decision.ref is not None


def test_many_threads_passing_the_deadline_together_reload_once(tmp_path: Path) -> None:
    import threading

    clock, events = Clock(), []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            events.append(event)

    fence, target = engine(tmp_path, clock, record)
    install(UA_CITY_DB, target)
    clock.now += 60.0
    start = threading.Barrier(8)
    answers: list[str] = []

    def work(n: int) -> None:
        start.wait()
        for i in range(50):
            decision = fence.decide(RequestInfo(peer=CRIMEA, path=f"/{n}/{i}"))
            with lock:
                answers.append(decision.action)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.kind for e in db_events(events)] == ["db_reloaded"]
    # Requests decided before the swap may still have used the old file; none failed.
    assert set(answers) <= {"allow", "block"} and len(answers) == 400
    assert fence.decide(RequestInfo(peer=CRIMEA, path="/after")).action == "block"


def test_a_decision_at_a_given_time_is_reported_at_that_time() -> None:
    """decide(now=...) (tests, the CLI, replays): the block event's `at` is that time, for a
    new client, a cached one and an account alike."""
    got: list[geofence.Event] = []
    engine = geofence.Engine.from_config(
        {
            "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
            "accounts": {"store": "memory://"},
        },
        on_event=got.append,
    )
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    engine.decide(geofence.RequestInfo(peer="175.16.199.1"), when)
    engine.decide(geofence.RequestInfo(peer="175.16.199.1"), when)
    engine.decide(geofence.RequestInfo(peer="175.16.199.2"), when, geofence.Account("a"))
    assert [(e.kind, e.at) for e in got] == [("block", when)] * 3
