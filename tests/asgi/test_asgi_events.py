"""Every engine event kind through the ASGI middleware's ``on_event=`` (with ``config=`` and with
a ready ``engine=``), requests sent by httpx to the real middleware, from real databases: a
replaced file (db_reloaded), a corrupt one (db_refused), a record that fails to decode
(db_error), and the request kinds. A callback that raises is logged and never reaches the
request. The engine's clock is injected (no sleeps)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_servers import free_port
from tests_support import BAD_DATA, BAD_RECORD_DB, CITY_DB, UA_CITY_DB

import geofence
from geofence import Event
from geofence_asgi import GeofenceMiddleware
from geofence_asgi import middleware as asgi_middleware

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


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def get(asgi: Any, peer: str) -> int:
    async def main() -> int:
        transport = httpx.ASGITransport(app=asgi, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return (await client.get("/v1/models")).status_code

    return asyncio.run(main())


_mtime = [1_670_000_000]


def install(source: str | Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".download")
    shutil.copyfile(source, tmp)
    _mtime[0] += 1
    os.utime(tmp, (_mtime[0], _mtime[0]))
    os.replace(tmp, target)


def policy(country_db: str) -> dict[str, Any]:
    return {
        "geoip": {"country_db": country_db, "reload_interval": 60},
        "rules": [{"name": "no-ua", "action": "block", "regions": ["UA"]}],
    }


def middleware(
    config: dict[str, Any], on_event: Callable[[Event], object], clock: Clock, ready: bool
) -> GeofenceMiddleware:
    """The middleware building its engine (config=), or given a ready one (engine=)."""
    if ready:
        engine = geofence.Engine.from_config(config, clock=clock)
        return GeofenceMiddleware(app, engine=engine, on_event=on_event)
    return GeofenceMiddleware(app, config, on_event=on_event)


BUILT = pytest.mark.parametrize("ready", [False, True], ids=["config", "engine"])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()

    class ClockedEngine(geofence.Engine):
        @classmethod
        def from_config(cls, obj: Any, **kwargs: Any) -> geofence.Engine:
            kwargs.setdefault("clock", clock)
            return super().from_config(obj, **kwargs)

    monkeypatch.setattr(asgi_middleware, "Engine", ClockedEngine)
    return clock


@BUILT
@pytest.mark.parametrize(
    ("mode", "action", "kind", "status"),
    [
        ("enforce", "block", "block", 451),
        ("enforce", "warn", "warn", 200),
        ("report", "block", "would_block", 200),
        ("report", "warn", "would_warn", 200),
    ],
)
def test_request_kinds_reach_on_event(
    clock: Clock, ready: bool, mode: str, action: str, kind: str, status: int
) -> None:
    events: list[Event] = []
    config = {
        "mode": mode,
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn", "action": action, "regions": ["CN"]}],
    }
    fenced = middleware(config, events.append, clock, ready)
    assert [get(fenced, CN) for _ in range(2)] == [status, status]
    assert [e.kind for e in events] == [kind, kind]
    decision = events[0].decision
    assert decision is not None and decision.rule == "cn" and decision.ref is not None


@BUILT
def test_reloaded_and_refused_files_reach_on_event(
    tmp_path: Path, clock: Clock, ready: bool
) -> None:
    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    events: list[Event] = []
    fenced = middleware(policy(str(target)), events.append, clock, ready)
    assert get(fenced, CRIMEA) == 200
    install(CORRUPT, target)
    clock.now += 60.0
    assert get(fenced, GB) == 200  # the old file answers
    install(UA_CITY_DB, target)
    clock.now += 60.0
    assert get(fenced, CRIMEA) == 451  # the new file answers
    assert [e.kind for e in events] == ["db_refused", "db_reloaded", "block"]
    refused, reloaded = events[0], events[1]
    assert refused.detail["db"] == "country" and refused.detail["path"] == str(target)
    assert reloaded.detail["path"] == str(target) and reloaded.detail["built"] is not None


@BUILT
def test_each_failed_lookup_reaches_on_event(clock: Clock, ready: bool) -> None:
    events: list[Event] = []
    fenced = middleware({"geoip": {"country_db": BAD_RECORD_DB}}, events.append, clock, ready)
    assert [get(fenced, BAD_ADDRESS) for _ in range(3)] == [200] * 3
    assert [e.kind for e in events] == ["db_error"] * 3
    assert events[0].detail["db"] == "country"


@BUILT
def test_a_raising_callback_never_reaches_a_request_of_any_kind(
    tmp_path: Path, clock: Clock, ready: bool, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[str] = []

    def broken(event: Event) -> None:
        raised.append(event.kind)
        raise RuntimeError(f"callback bug on {event.kind}")

    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    fenced = middleware(policy(str(target)), broken, clock, ready)
    failing = middleware({"geoip": {"country_db": BAD_RECORD_DB}}, broken, clock, ready)
    install(CORRUPT, target)
    clock.now += 60.0
    statuses = [get(fenced, GB)]
    install(UA_CITY_DB, target)
    clock.now += 60.0
    statuses += [get(fenced, CRIMEA), get(failing, BAD_ADDRESS)]
    assert statuses == [200, 451, 200]
    assert raised == ["db_refused", "db_reloaded", "block", "db_error"]
    failures = [r for r in caplog.records if "on_event callback failed" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.ERROR] * 4
    assert all(r.exc_info is not None for r in failures)
    assert "callback bug on db_error" in caplog.text


@BUILT
def test_store_error_reaches_on_event_and_a_raising_callback_never_reaches_the_request(
    clock: Clock, ready: bool, caplog: pytest.LogCaptureFixture
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
    events: list[Event] = []

    def broken(event: Event) -> None:
        events.append(event)
        raise RuntimeError(f"callback bug on {event.kind}")

    if ready:
        engine = geofence.Engine.from_config(config, clock=clock)
        fenced = GeofenceMiddleware(app, engine=engine, on_event=broken, account=_org_cn)
    else:
        fenced = GeofenceMiddleware(app, config, on_event=broken, account=_org_cn)
    assert [get(fenced, CN) for _ in range(4)] == [200] * 4  # "local": a warning
    stores = [e for e in events if e.kind == "store_error"]
    assert len(stores) == 1 and "error" in stores[0].detail
    failures = [r for r in caplog.records if "on_event callback failed" in r.getMessage()]
    assert len(failures) == len(events) and all(r.exc_info is not None for r in failures)


def _org_cn(scope: dict[str, Any]) -> str:
    return "org_cn"


@BUILT
def test_grace_started_and_home_mismatch_reach_on_event_once(clock: Clock, ready: bool) -> None:
    config = {
        "geoip": {"country_db": CITY_DB},
        "accounts": {"store": "memory://"},
        "rules": [
            {"name": "graced", "action": "block", "regions": ["CN"], "account_grace": "14d"},
            {"name": "abroad", "action": "warn", "home_mismatch": True},
        ],
    }
    events: list[Event] = []

    def account(scope: dict[str, Any]) -> geofence.Account:
        return geofence.Account("org_us", home_country="US")

    if ready:
        engine = geofence.Engine.from_config(config, clock=clock)
        fenced = GeofenceMiddleware(app, engine=engine, on_event=events.append, account=account)
    else:
        fenced = GeofenceMiddleware(app, config, on_event=events.append, account=account)
    assert [get(fenced, peer) for peer in (CN, CN, GB, GB)] == [200] * 4
    transitions = [e for e in events if e.kind.startswith("account_")]
    assert [(e.kind, e.account) for e in transitions] == [
        ("account_grace_started", "org_us"),
        ("account_home_mismatch", "org_us"),
    ]
    assert transitions[1].detail["country"] == "GB"
