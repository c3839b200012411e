"""Every engine event kind as the Flask (blinker) signal ``geofence_event``, sent with the app,
through the real extension and Flask's test client, from real databases: a replaced file
(db_reloaded), a corrupt one (db_refused), a record that fails to decode (db_error), and the
request kinds. A receiver that raises is logged and never reaches the request. The engine's
clock is injected (no sleeps)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis_servers import free_port
from tests_support import BAD_DATA, BAD_RECORD_DB, CITY_DB, UA_CITY_DB

import geofence
from geofence import Event
from geofence_flask import Geofence, extension, geofence_event

CORRUPT = BAD_DATA / "libmaxminddb" / "libmaxminddb-metadata-marker-only.mmdb"
CN = "175.16.199.1"
GB = "81.2.69.142"
CRIMEA = "31.43.1.1"  # not found in the City test database, UA-43 in the UA fixture
BAD_ADDRESS = "216.160.83.56"  # a malformed record in BAD_RECORD_DB


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


class ClockedEngine(geofence.Engine):
    """The extension's engine, on the test's clock (what drives the reload checks)."""

    @classmethod
    def from_config(cls, obj: Any, **kwargs: Any) -> geofence.Engine:
        kwargs.setdefault("clock", CLOCK)
        return super().from_config(obj, **kwargs)


@pytest.fixture(autouse=True)
def clocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extension, "Engine", ClockedEngine)


_mtime = [1_660_000_000]


def install(source: str | Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".download")
    shutil.copyfile(source, tmp)
    _mtime[0] += 1
    os.utime(tmp, (_mtime[0], _mtime[0]))
    os.replace(tmp, target)


def make_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)

    @app.get("/v1/models")
    def models() -> str:
        return "ok"

    Geofence(app, config=config)
    return app


def get(app: Flask, peer: str) -> int:
    response = app.test_client().get("/v1/models", environ_base={"REMOTE_ADDR": peer})
    return response.status_code


@contextmanager
def receiving(app: Flask) -> Iterator[list[tuple[Any, Event]]]:
    got: list[tuple[Any, Event]] = []

    def receiver(sender: Any, event: Event) -> None:
        got.append((sender, event))

    with geofence_event.connected_to(receiver, sender=app):
        yield got


def policy(country_db: str) -> dict[str, Any]:
    return {
        "geoip": {"country_db": country_db, "reload_interval": 60},
        "rules": [{"name": "no-ua", "action": "block", "regions": ["UA"]}],
    }


@pytest.mark.parametrize(
    ("mode", "action", "kind", "status"),
    [
        ("enforce", "block", "block", 451),
        ("enforce", "warn", "warn", 200),
        ("report", "block", "would_block", 200),
        ("report", "warn", "would_warn", 200),
    ],
)
def test_request_kinds_are_the_signal(mode: str, action: str, kind: str, status: int) -> None:
    app = make_app(
        {
            "mode": mode,
            "geoip": {"country_db": CITY_DB},
            "rules": [{"name": "cn", "action": action, "regions": ["CN"]}],
        }
    )
    with receiving(app) as got:
        assert [get(app, CN) for _ in range(2)] == [status, status]
    assert [(sender, e.kind) for sender, e in got] == [(app, kind), (app, kind)]
    decision = got[0][1].decision
    assert decision is not None and decision.rule == "cn" and decision.ref is not None


def test_reloaded_and_refused_files_are_the_signal(tmp_path: Path) -> None:
    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    app = make_app(policy(str(target)))
    other = make_app(policy(CITY_DB))  # another app hears nothing of this one's databases
    with receiving(app) as got, receiving(other) as got_other:
        assert get(app, CRIMEA) == 200
        install(CORRUPT, target)
        CLOCK.now += 60.0
        assert get(app, GB) == 200  # the old file answers
        install(UA_CITY_DB, target)
        CLOCK.now += 60.0
        assert get(app, CRIMEA) == 451  # the new file answers
    assert [(s, e.kind) for s, e in got] == [
        (app, "db_refused"),
        (app, "db_reloaded"),
        (app, "block"),
    ]
    assert got_other == []
    refused, reloaded = got[0][1], got[1][1]
    assert refused.detail["db"] == "country" and refused.detail["path"] == str(target)
    assert reloaded.detail["path"] == str(target) and reloaded.detail["built"] is not None


def test_each_failed_lookup_is_the_signal() -> None:
    app = make_app({"geoip": {"country_db": BAD_RECORD_DB}})
    with receiving(app) as got:
        assert [get(app, BAD_ADDRESS) for _ in range(3)] == [200] * 3
    assert [e.kind for _, e in got] == ["db_error"] * 3
    assert got[0][1].detail["db"] == "country"


def test_a_raising_receiver_never_reaches_a_request_of_any_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    app = make_app(policy(str(target)))
    failing = make_app({"geoip": {"country_db": BAD_RECORD_DB}})
    raised: list[str] = []

    def broken(sender: Any, event: Event) -> None:
        raised.append(event.kind)
        raise RuntimeError(f"receiver bug on {event.kind}")

    with (
        geofence_event.connected_to(broken, sender=app),
        geofence_event.connected_to(broken, sender=failing),
        receiving(app) as got,
    ):
        install(CORRUPT, target)
        CLOCK.now += 60.0
        statuses = [get(app, GB)]
        install(UA_CITY_DB, target)
        CLOCK.now += 60.0
        statuses += [get(app, CRIMEA), get(failing, BAD_ADDRESS)]
    assert statuses == [200, 451, 200]
    assert raised == ["db_refused", "db_reloaded", "block", "db_error"]
    assert [e.kind for _, e in got] == ["db_refused", "db_reloaded", "block"]
    failures = [r for r in caplog.records if r.name == "geofence.flask"]
    assert [r.levelno for r in failures] == [logging.ERROR] * 4
    assert all(r.exc_info is not None for r in failures)
    assert "receiver bug on db_reloaded" in caplog.text


def test_store_error_is_the_signal_and_a_raising_receiver_never_reaches_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Accounts on a Redis URI nothing listens on: the third failure opens the breaker.
    config = {
        "geoip": {"country_db": CITY_DB},
        "accounts": {
            "store": f"redis://127.0.0.1:{free_port()}/0",
            "timeout": "200ms",
            "on_store_error": "local",
        },
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"], "account_grace": "14d"}],
    }
    app = Flask(__name__)

    @app.get("/v1/models")
    def models() -> str:
        return "ok"

    Geofence(app, config=config, account=lambda: "org_cn")
    raised: list[str] = []

    def broken(sender: Any, event: Event) -> None:
        raised.append(event.kind)
        raise RuntimeError(f"receiver bug on {event.kind}")

    with geofence_event.connected_to(broken, sender=app), receiving(app) as got:
        statuses = [get(app, CN) for _ in range(4)]
    assert statuses == [200] * 4  # on_store_error = "local": this process's grace, a warning
    stores = [e for _, e in got if e.kind == "store_error"]
    assert len(stores) == 1 and "error" in stores[0].detail
    assert "store_error" in raised
    failures = [r for r in caplog.records if r.name == "geofence.flask"]
    assert len(failures) == len(raised) and all(r.exc_info is not None for r in failures)


def test_grace_started_and_home_mismatch_are_the_signal_once() -> None:
    app = Flask(__name__)

    @app.get("/v1/models")
    def models() -> str:
        return "ok"

    config = {
        "geoip": {"country_db": CITY_DB},
        "accounts": {"store": "memory://"},
        "rules": [
            {"name": "graced", "action": "block", "regions": ["CN"], "account_grace": "14d"},
            {"name": "abroad", "action": "warn", "home_mismatch": True},
        ],
    }
    Geofence(app, config=config, account=lambda: geofence.Account("org_us", home_country="US"))
    with receiving(app) as got:
        assert [get(app, peer) for peer in (CN, CN, GB, GB)] == [200] * 4
    transitions = [e for _, e in got if e.kind.startswith("account_")]
    assert [(e.kind, e.account) for e in transitions] == [
        ("account_grace_started", "org_us"),
        ("account_home_mismatch", "org_us"),
    ]
    assert transitions[1].detail["country"] == "GB"


def test_without_a_receiver_for_the_app_blocks_build_no_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An Event costs a blocked or warned request about 20,000 instructions: the signal tells
    # the engine when nobody receives it for this app (Emitter's geofence_listening()).
    built: list[str] = []

    def recording(**fields: Any) -> Event:
        built.append(fields["kind"])
        return Event(**fields)

    monkeypatch.setattr(geofence._observer, "Event", recording)
    config = {
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
    }
    app, other = make_app(config), make_app(config)
    with receiving(other) as elsewhere:  # a receiver for another app is no listener here
        assert [get(app, CN), get(app, CN)] == [451, 451]
    assert built == [] and elsewhere == []
    with receiving(app) as got:  # connected after the engine was built
        assert get(app, CN) == 451
    assert get(app, CN) == 451
    assert built == ["block"]
    assert [(sender, event.kind) for sender, event in got] == [(app, "block")]
