"""Every engine event kind as the Django signal ``geofence_event``, through the real middleware
(WSGI and ASGI handlers), from real databases: a replaced file (db_reloaded), a corrupt one
(db_refused), a record that fails to decode (db_error), and the request kinds. A receiver that
raises is logged and never reaches the request. The engine's clock is injected (no sleeps)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.http.response import HttpResponseBase
from django.test import Client, override_settings
from django_support import PeerAsyncClient
from redis_servers import free_port
from scenarios.table import ACCOUNT_HEADER, account_header
from tests_support import BAD_DATA, BAD_RECORD_DB, CITY_DB, UA_CITY_DB

import geofence
from geofence import Event
from geofence_django import conf
from geofence_django.signals import geofence_event

CORRUPT = BAD_DATA / "libmaxminddb" / "libmaxminddb-metadata-marker-only.mmdb"
CN = "175.16.199.1"
GB = "81.2.69.142"
CRIMEA = "31.43.1.1"  # not found in the City test database, UA-43 in the UA fixture
BAD_ADDRESS = "216.160.83.56"  # a malformed record in BAD_RECORD_DB
PATHS = pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
HEADER_HOOK = "djsite.views.account_of"  # the account named by the x-test-account header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


class ClockedEngine(geofence.Engine):
    """The adapter's engine, on the test's clock (what drives the reload checks)."""

    @classmethod
    def from_config(cls, obj: Any, **kwargs: Any) -> geofence.Engine:
        kwargs.setdefault("clock", CLOCK)
        return super().from_config(obj, **kwargs)


@pytest.fixture(autouse=True)
def clocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conf, "Engine", ClockedEngine)


@pytest.fixture
def received() -> Iterator[list[Event]]:
    got: list[Event] = []

    def receiver(sender: Any, event: Event, **kwargs: Any) -> None:
        assert sender is geofence.Engine
        got.append(event)

    geofence_event.connect(receiver, dispatch_uid="test-events-received")
    yield got
    geofence_event.disconnect(dispatch_uid="test-events-received")


@pytest.fixture
def broken() -> Iterator[list[str]]:
    kinds: list[str] = []

    def receiver(sender: Any, event: Event, **kwargs: Any) -> None:
        kinds.append(event.kind)
        raise RuntimeError(f"receiver bug on {event.kind}")

    geofence_event.connect(receiver, dispatch_uid="test-events-broken")
    yield kinds
    geofence_event.disconnect(dispatch_uid="test-events-broken")


_mtime = [1_650_000_000]


def install(source: str | Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".download")
    shutil.copyfile(source, tmp)
    _mtime[0] += 1
    os.utime(tmp, (_mtime[0], _mtime[0]))
    os.replace(tmp, target)


def get(peer: str, *, asgi: bool, path: str = "/v1/models") -> HttpResponseBase:
    if not asgi:
        return Client(REMOTE_ADDR=peer).get(path)
    with override_settings(ROOT_URLCONF="djsite.urls_async"):
        return asyncio.run(PeerAsyncClient(peer).get(path))


def policy(country_db: str, **extra: Any) -> dict[str, Any]:
    return {
        "geoip": {"country_db": country_db, "reload_interval": 60},
        "rules": [{"name": "no-ua", "action": "block", "regions": ["UA"]}],
        **extra,
    }


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


@PATHS
@pytest.mark.parametrize(
    ("mode", "action", "kind", "status"),
    [
        ("enforce", "block", "block", 451),
        ("enforce", "warn", "warn", 200),
        ("report", "block", "would_block", 200),
        ("report", "warn", "would_warn", 200),
    ],
)
def test_request_kinds_are_the_signal(
    received: list[Event], asgi: bool, mode: str, action: str, kind: str, status: int
) -> None:
    config = {
        "mode": mode,
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn", "action": action, "regions": ["CN"]}],
    }
    with override_settings(GEOFENCE=config):
        responses = [get(CN, asgi=asgi) for _ in range(2)]
    assert [r.status_code for r in responses] == [status, status]
    assert kinds(received) == [kind, kind]
    decision = received[0].decision
    assert decision is not None and decision.rule == "cn" and decision.ref is not None


@PATHS
def test_reloaded_and_refused_files_are_the_signal(
    tmp_path: Path, received: list[Event], asgi: bool
) -> None:
    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    with override_settings(GEOFENCE=policy(str(target))):
        assert get(CRIMEA, asgi=asgi).status_code == 200  # not found: allowed
        install(CORRUPT, target)
        CLOCK.now += 60.0
        assert get(GB, asgi=asgi).status_code == 200  # the old file answers
        install(UA_CITY_DB, target)
        CLOCK.now += 60.0
        assert get(CRIMEA, asgi=asgi).status_code == 451  # the new file answers
    assert kinds(received) == ["db_refused", "db_reloaded", "block"]
    refused, reloaded = received[0], received[1]
    assert refused.detail["db"] == "country" and refused.detail["path"] == str(target)
    assert isinstance(refused.detail["reason"], str)
    assert reloaded.detail["path"] == str(target)
    assert reloaded.detail["built"] is not None


@PATHS
def test_each_failed_lookup_is_the_signal(received: list[Event], asgi: bool) -> None:
    with override_settings(GEOFENCE={"geoip": {"country_db": BAD_RECORD_DB}}):
        responses = [get(BAD_ADDRESS, asgi=asgi) for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3  # on_error = "allow"
    assert kinds(received) == ["db_error"] * 3
    assert received[0].detail["db"] == "country"
    assert BAD_ADDRESS not in str(received[0].detail["error"])


@PATHS
def test_a_raising_receiver_never_reaches_a_request_of_any_kind(
    tmp_path: Path,
    received: list[Event],
    broken: list[str],
    caplog: pytest.LogCaptureFixture,
    asgi: bool,
) -> None:
    target = tmp_path / "City.mmdb"
    install(CITY_DB, target)
    statuses = []
    with override_settings(GEOFENCE=policy(str(target))):
        statuses.append(get(GB, asgi=asgi).status_code)  # the engine is built on first use
        install(CORRUPT, target)
        CLOCK.now += 60.0
        statuses.append(get(GB, asgi=asgi).status_code)
        install(UA_CITY_DB, target)
        CLOCK.now += 60.0
        statuses.append(get(CRIMEA, asgi=asgi).status_code)
    with override_settings(GEOFENCE={"geoip": {"country_db": BAD_RECORD_DB}}):
        statuses.append(get(BAD_ADDRESS, asgi=asgi).status_code)
    assert statuses == [200, 200, 451, 200]
    assert broken == ["db_refused", "db_reloaded", "block", "db_error"]
    # The other receiver still heard every event.
    assert kinds(received) == broken
    failures = [r for r in caplog.records if r.name == "geofence.django"]
    assert [r.levelno for r in failures] == [logging.ERROR] * 4
    assert all(r.exc_info is not None for r in failures)
    assert "receiver bug on db_refused" in caplog.text


# -- store_error ----------------------------------------------------------------------------


def unreachable_store() -> dict[str, Any]:
    """Accounts on a Redis URI nothing listens on: the third failure opens the breaker."""
    return {
        "geoip": {"country_db": CITY_DB},
        "accounts": {
            "store": f"redis://127.0.0.1:{free_port()}/0",
            "timeout": "200ms",
            "on_store_error": "local",
        },
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"], "account_grace": "14d"}],
    }


@PATHS
def test_store_error_is_the_signal_and_a_raising_receiver_never_reaches_the_request(
    received: list[Event], broken: list[str], caplog: pytest.LogCaptureFixture, asgi: bool
) -> None:
    headers = {ACCOUNT_HEADER: account_header("org_cn")}
    urls = "djsite.urls_async" if asgi else "djsite.urls"
    with override_settings(
        GEOFENCE=unreachable_store(), GEOFENCE_ACCOUNT=HEADER_HOOK, ROOT_URLCONF=urls
    ):
        if asgi:

            async def main() -> list[int]:
                client = PeerAsyncClient(CN)
                return [
                    (await client.get("/v1/models", headers=headers)).status_code for _ in "abcd"
                ]

            statuses = asyncio.run(main())
        else:
            client = Client(REMOTE_ADDR=CN)
            statuses = [client.get("/v1/models", headers=headers).status_code for _ in "abcd"]
    assert statuses == [200] * 4  # on_store_error = "local": this process's grace, a warning
    stores = [e for e in received if e.kind == "store_error"]
    assert len(stores) == 1 and "error" in stores[0].detail
    assert "store_error" in broken
    failures = [r for r in caplog.records if r.name == "geofence.django"]
    assert len(failures) == len(broken) and all(r.exc_info is not None for r in failures)


# -- account kinds not covered by test_django_accounts.py ----------------------------------

ACCOUNTS_POLICY: dict[str, Any] = {
    "geoip": {"country_db": CITY_DB},
    "accounts": {"store": "memory://"},
    "rules": [
        {"name": "graced", "action": "block", "regions": ["CN"], "account_grace": "14d"},
        {"name": "abroad", "action": "warn", "home_mismatch": True},
    ],
}


@PATHS
def test_grace_started_and_home_mismatch_are_the_signal_once(
    received: list[Event], asgi: bool
) -> None:
    account = geofence.Account("org_us", home_country="US")
    headers = {ACCOUNT_HEADER: account_header(account)}
    urls = "djsite.urls_async" if asgi else "djsite.urls"
    peers = [CN, CN, GB, GB]
    with override_settings(
        GEOFENCE=ACCOUNTS_POLICY, GEOFENCE_ACCOUNT=HEADER_HOOK, ROOT_URLCONF=urls
    ):
        if asgi:

            async def main() -> list[int]:
                return [
                    (await PeerAsyncClient(p).get("/v1/models", headers=headers)).status_code
                    for p in peers
                ]

            statuses = asyncio.run(main())
        else:
            statuses = [
                Client(REMOTE_ADDR=p).get("/v1/models", headers=headers).status_code for p in peers
            ]
    assert statuses == [200] * 4  # warnings: the account's grace, then abroad
    transitions = [e for e in received if e.kind.startswith("account_")]
    assert [(e.kind, e.account) for e in transitions] == [
        ("account_grace_started", "org_us"),
        ("account_home_mismatch", "org_us"),
    ]
    assert transitions[0].detail["until"] is not None
    assert transitions[1].detail["country"] == "GB"


@PATHS
def test_without_a_receiver_blocks_build_no_event(
    asgi: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An Event costs a blocked or warned request about 20,000 instructions: the signal tells
    # the engine when nobody receives it (Emitter's geofence_listening()), and nothing is built.
    built: list[str] = []

    def recording(**fields: Any) -> Event:
        built.append(fields["kind"])
        return Event(**fields)

    monkeypatch.setattr(geofence._observer, "Event", recording)
    got: list[Event] = []

    def receiver(sender: Any, event: Event, **kwargs: Any) -> None:
        got.append(event)

    config = {
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
    }
    with override_settings(GEOFENCE=config):
        assert [get(CN, asgi=asgi).status_code for _ in range(2)] == [451, 451]
        assert built == []
        geofence_event.connect(receiver, dispatch_uid="test-events-later")
        try:
            assert get(CN, asgi=asgi).status_code == 451  # a receiver connected later
        finally:
            geofence_event.disconnect(dispatch_uid="test-events-later")
        assert get(CN, asgi=asgi).status_code == 451
    assert built == ["block"]
    assert kinds(got) == ["block"]


def test_a_receiver_for_another_sender_is_no_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    def receiver(sender: Any, event: Event, **kwargs: Any) -> None:
        raise AssertionError("not for this sender")

    config = {
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
    }
    geofence_event.connect(receiver, sender=object, dispatch_uid="test-events-other")
    try:
        with override_settings(GEOFENCE=config):
            assert get(CN, asgi=False).status_code == 451
            assert not conf.get_engine().events.wants_requests
    finally:
        geofence_event.disconnect(sender=object, dispatch_uid="test-events-other")
