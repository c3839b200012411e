"""Several engines (the processes of one app) on one Redis: the DESIGN sentences about what
is shared, through the engine's public API (each engine stands for a process; the
many-processes test runs real ones)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests_support import CITY_DB

import geofence
from geofence import Account, Event, RequestInfo
from geofence._events import REQUEST_KINDS

E = datetime(2026, 7, 9, tzinfo=timezone.utc)
CN, GB = "175.16.199.1", "81.2.69.142"
SECOND = timedelta(seconds=1)


@pytest.fixture(params=["redis", pytest.param("cluster", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest) -> str:
    fixture = "redis_standalone" if request.param == "redis" else "redis_cluster_nodes"
    url: str = request.getfixturevalue(fixture).url
    return url


def engines(store: str, n: int = 2, **accounts: Any) -> tuple[list[geofence.Engine], list[Event]]:
    prefix = f"shared-{uuid.uuid4().hex[:10]}"
    events: list[Event] = []
    config = {
        "geoip": {"country_db": CITY_DB},
        "accounts": {"store": store, "key_prefix": prefix, "timeout": "2s", **accounts},
        "strikes": {"threshold": 3, "window": "1h", "suspend_for": "1d"},
        "rules": [
            {
                "name": "unsupported",
                "action": "block",
                "regions": ["CN"],
                "enforce_from": E.isoformat(),
                "account_grace": "14d",
            },
            {"name": "always", "action": "block", "regions": ["RU"]},
        ],
    }
    return [geofence.Engine.from_config(config, on_event=events.append) for _ in range(n)], events


def req(ip: str) -> RequestInfo:
    return RequestInfo(peer=ip, path="/v1/models")


def test_grace_starts_once_across_processes(store: str) -> None:
    (a, b), events = engines(store)
    acct = Account("org_1")
    first = a.decide(req(CN), E + 2 * 24 * 3600 * SECOND, acct)
    later = b.decide(req(CN), E + 5 * 24 * 3600 * SECOND, acct)
    assert first.enforce_from == later.enforce_from == E + 16 * 24 * 3600 * SECOND
    assert [e.kind for e in events if e.kind not in REQUEST_KINDS] == ["account_grace_started"]


def test_a_suspension_made_elsewhere_applies_here_within_refresh(store: str) -> None:
    (a, b), events = engines(store)
    acct = Account("org_2")
    # b reads the account (not suspended) and trusts that copy for `refresh` (5 s).
    assert b.decide(req(GB), E, acct).action == "allow"
    for i in range(3):
        a.decide(req("2a02:d0c0::1"), E + i * SECOND, acct)  # RU: a block, a strike
    assert a.decide(req(GB), E + 3 * SECOND, acct).reason == "account_suspended"
    assert b.decide(req(GB), E + 4 * SECOND, acct).reason == "default"  # its copy is fresh
    assert b.decide(req(GB), E + 5 * SECOND, acct).reason == "account_suspended"
    assert [e.kind for e in events].count("account_suspended") == 1


def test_strikes_from_every_process_add_up(store: str) -> None:
    engs, events = engines(store, n=3)
    acct = Account("org_3")
    for i, eng in enumerate(engs):
        eng.decide(req("2a02:d0c0::1"), E + i * SECOND, acct)
    suspended = [e for e in events if e.kind == "account_suspended"]
    assert len(suspended) == 1
    state = engs[0].store.fetch("org_3", (E + 10 * SECOND).timestamp())  # type: ignore[union-attr]
    assert (state.strikes, state.suspension) == (3, "suspend")


def test_refresh_zero_reads_the_store_every_time(store: str) -> None:
    (a, b), _ = engines(store, refresh=0)
    acct = Account("org_4")
    assert b.decide(req(GB), E, acct).action == "allow"
    for i in range(3):
        a.decide(req("2a02:d0c0::1"), E + i * SECOND, acct)
    assert b.decide(req(GB), E + 3 * SECOND, acct).reason == "account_suspended"


def test_async_and_sync_share_the_store(store: str) -> None:
    (a, b), _ = engines(store)
    acct = Account("org_5")

    async def strikes() -> list[str]:
        return [
            (await a.adecide(req("2a02:d0c0::1"), E + i * SECOND, acct)).reason for i in range(3)
        ]

    assert asyncio.run(strikes()) == ["rule", "rule", "account_suspended"]
    assert b.decide(req(GB), E + 4 * SECOND, acct).reason == "account_suspended"
