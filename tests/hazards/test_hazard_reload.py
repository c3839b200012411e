"""Reload under load, at the engine level: decisions never fail while the database is swapped.

8 threads call ``engine.decide`` without pause (and, in the ASGI variant, hundreds of asyncio
tasks send requests through ``geofence_asgi.GeofenceMiddleware``) while the country database
is replaced atomically (``os.replace``, as geoipupdate does) hundreds of times, alternating
two valid City databases with invalid replacements. Time is an injected monotonic clock that
the test advances; nothing sleeps.

The policy makes every file visible in the decisions: a rule on KP (which only a refused
file answers), one on UA-43 (only database B has it), one on GB-ENG (both valid files have
it; a Country database would lose it) and one on IR (only database A has it). So a decision
from a refused file, a stale cached decision and a failed lookup are all detectable.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import logging
import os
import random
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import geofence
from geofence.geoip._reloading import Reloading

DATA = Path(__file__).parent.parent / "data"
TEST_DATA = DATA / "maxmind" / "test-data"
CITY_A = (TEST_DATA / "GeoIP2-City-Test.mmdb").read_bytes()
CITY_B = (DATA / "fixtures" / "GeoIP2-City-UA.mmdb").read_bytes()
INVALID = [
    b"",
    CITY_A[: len(CITY_A) // 2],
    gzip.compress(CITY_B),
    b"<html>502 Bad Gateway</html>",
    # Typed GeoLite2-ASN, but every record says KP: a decision on KP means it answered.
    (DATA / "fixtures" / "GeoLite2-ASN-with-countries.mmdb").read_bytes(),
    # A valid Country database: refused, since the policy's GB-ENG rule needs subdivisions.
    (TEST_DATA / "GeoIP2-Country-Test.mmdb").read_bytes(),
    (TEST_DATA / "GeoIP2-City-Test-Broken-Double-Format.mmdb").read_bytes(),
    (TEST_DATA / "GeoIP2-Anonymous-IP-Test.mmdb").read_bytes(),
]

POLICY: dict[str, Any] = {
    "rules": [
        {"name": "kp", "action": "block", "regions": ["KP"], "status": 403},
        {"name": "crimea", "action": "block", "regions": ["UA-43"]},
        {"name": "gb-eng", "action": "warn", "regions": ["GB-ENG"]},
        {"name": "ir", "action": "block", "regions": ["IR"]},
    ],
}
# (action, reason, rule) that each valid file gives; anything else is a failure.
Answer = tuple[str, str, str | None]
ALLOW_NOT_FOUND: Answer = ("allow", "not_found", None)
EXPECTED: dict[str, dict[str, Answer]] = {
    "81.2.69.142": {"A": ("warn", "rule", "gb-eng"), "B": ("warn", "rule", "gb-eng")},
    "31.43.1.1": {"A": ALLOW_NOT_FOUND, "B": ("block", "rule", "crimea")},
    "2a02:d2c0::1": {"A": ("block", "rule", "ir"), "B": ALLOW_NOT_FOUND},
    "175.16.199.1": {"A": ("allow", "default", None), "B": ("allow", "default", None)},
    "2a00:1000::1": {"A": ALLOW_NOT_FOUND, "B": ("block", "rule", "crimea")},
}
# New addresses in 31.43.0.0/16 (UA-43 in B, absent from A) take the lookup's miss path.
NEW_IN_CRIMEA = EXPECTED["31.43.1.1"]
PROBES = list(EXPECTED)


class Clock:
    """The monotonic clock the engine schedules its reload checks on."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


_mtimes = itertools.count(1_700_000_000)


def download(content: bytes, path: Path) -> Path:
    """Write ``content`` at ``path`` with an mtime of its own (as a new download has)."""
    path.write_bytes(content)
    seconds = next(_mtimes)
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))
    return path


def install(content: bytes, target: Path) -> None:
    """Replace ``target`` atomically, as geoipupdate does."""
    os.replace(download(content, target.with_name(target.name + ".download")), target)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def maps(folder: Path) -> int:
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as lines:
        return sum(str(folder) in line for line in lines)


def key(decision: geofence.Decision) -> Answer:
    return decision.action, decision.reason, decision.rule


def allowed(ip: str) -> set[Answer]:
    return set((EXPECTED.get(ip) or NEW_IN_CRIMEA).values())


def engine_for(target: Path, clock: Clock, mode: str) -> geofence.Engine:
    config = {**POLICY, "geoip": {"country_db": str(target), "reader": mode, "reload_interval": 1}}
    engine = geofence.Engine.from_config(config, clock=clock)
    assert isinstance(engine.country_db, Reloading)
    return engine


@contextmanager
def fast_switching() -> Iterator[None]:
    # Hand the GIL over often, so that the swapping thread and the deciding ones interleave
    # at many more points than the default 5 ms slices allow.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.00002)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def schedule(swaps: int) -> Iterator[tuple[bytes, str | None]]:
    """(content, "A" | "B" for a valid file, None for an invalid one), alternating."""
    valid = itertools.cycle([(CITY_B, "B"), (CITY_A, "A")])
    invalid = itertools.cycle(INVALID)
    for i in range(swaps):
        yield next(valid) if i % 2 == 0 else (next(invalid), None)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "geofence" and r.levelno >= logging.ERROR]


pytestmark = pytest.mark.skipif(
    not Path("/proc/self/maps").exists(), reason="counts descriptors and maps in Linux /proc"
)


@pytest.mark.parametrize(("mode", "swaps"), [("auto", 200), ("mmap", 10), ("memory", 10)])
def test_threads_decide_through_hundreds_of_swaps(
    tmp_path: Path, mode: str, swaps: int, caplog: pytest.LogCaptureFixture
) -> None:
    # WARNING: the refusals are counted; a record per decided request would only cost time.
    caplog.set_level(logging.WARNING, logger="geofence")
    target = tmp_path / "GeoIP2-City.mmdb"
    install(CITY_A, target)
    gc.collect()
    fds_before, maps_before = fds(), maps(tmp_path)
    invalid = swap_under_threads(tmp_path, target, mode, swaps)
    assert len(errors(caplog)) == invalid  # each refused file is logged once
    # The engine is gone: so are the descriptor and the mapping of the last file it used.
    gc.collect()
    assert (fds(), maps(tmp_path)) == (fds_before, maps_before)


def swap_under_threads(tmp_path: Path, target: Path, mode: str, swaps: int) -> int:
    """Swap ``target`` ``swaps`` times under 8 deciding threads; the number refused."""
    clock = Clock()
    engine = engine_for(target, clock, mode)
    db = engine.country_db
    assert isinstance(db, Reloading)
    fds_loaded, maps_loaded = fds(), maps(tmp_path)

    stop = threading.Event()
    failures: list[str] = []
    counts = [0] * 8

    def worker(n: int) -> None:
        rng = random.Random(n)
        while not stop.is_set():
            if rng.random() < 0.25:
                ip = f"31.43.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            else:
                ip = rng.choice(PROBES)
            try:
                decision = engine.decide(geofence.RequestInfo(peer=ip, path=f"/{n % 3}"))
            except Exception as error:  # any escape is the failure
                failures.append(f"{ip}: raised {error!r}")
                continue
            if key(decision) not in allowed(ip):
                failures.append(f"{ip}: {decision}")
            counts[n] += 1

    # Every replacement is written before the threads start: under their load each write
    # would wait for the GIL many times, and only the rename matters here.
    downloads = [
        (download(content, tmp_path / f"download-{i}"), name)
        for i, (content, name) in enumerate(schedule(swaps))
    ]
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    valid = invalid = 0
    current = "A"
    with fast_switching():
        for thread in threads:
            thread.start()
        try:
            for i, (path, name) in enumerate(downloads):
                os.replace(path, target)
                clock.now += 1
                for _ in range(10**6):  # until some thread (or this one) has checked the file
                    if db.reloads + db.rejections == i + 1:
                        break
                    engine.decide(geofence.RequestInfo(peer="81.2.69.142"))
                if name is None:
                    invalid += 1
                else:
                    valid += 1
                    current = name
                assert (db.reloads, db.rejections) == (valid, invalid), i
                # No stale decision: the addresses the threads keep deciding (so whose
                # decisions are cached) now follow the file in use, the last valid one.
                for ip in PROBES:
                    decision = engine.decide(geofence.RequestInfo(peer=ip))
                    assert key(decision) == EXPECTED[ip][current], (i, ip, decision)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert failures == []
    assert min(counts) > 0
    assert valid + invalid == swaps and invalid == swaps // 2
    # Every replaced database let go of its descriptor and its mapping.
    gc.collect()
    assert (fds(), maps(tmp_path)) == (fds_loaded, maps_loaded)
    return invalid


def test_a_swap_changes_a_cached_decision(tmp_path: Path) -> None:
    """The decision cache follows the database: the same client, decided a thousand times
    from cache, gets the new country's decision right after a reload, and back again."""
    target = tmp_path / "GeoIP2-City.mmdb"
    install(CITY_A, target)
    clock = Clock()
    engine = engine_for(target, clock, "auto")
    request = geofence.RequestInfo(peer="31.43.1.1")
    for _ in range(1000):
        assert key(engine.decide(request)) == ALLOW_NOT_FOUND
    install(CITY_B, target)
    assert key(engine.decide(request)) == ALLOW_NOT_FOUND  # not checked before the interval
    clock.now += 1
    crimea = engine.decide(request)
    assert (crimea.action, crimea.rule, crimea.subdivisions) == ("block", "crimea", ("UA-43",))
    install(CITY_A, target)
    clock.now += 1
    assert key(engine.decide(request)) == ALLOW_NOT_FOUND


# -- ASGI: hundreds of concurrent tasks ----------------------------------------------------

TASKS = 200
ASGI_SWAPS = 200


def scope_for(ip: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/x",
        "raw_path": b"/v1/x",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": (ip, 50000),
        "server": ("testserver", 80),
    }


def test_asgi_tasks_through_hundreds_of_swaps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """TASKS client tasks send one request per wave, all in flight at once; the file is
    replaced before each wave, while the previous wave's requests are still open."""
    caplog.set_level(logging.WARNING, logger="geofence")
    target = tmp_path / "GeoIP2-City.mmdb"
    install(CITY_A, target)
    gc.collect()
    fds_before, maps_before = fds(), maps(tmp_path)
    serve_through_swaps(target)
    assert len(errors(caplog)) == ASGI_SWAPS // 2
    gc.collect()
    assert (fds(), maps(tmp_path)) == (fds_before, maps_before)


def serve_through_swaps(target: Path) -> None:
    from geofence_asgi import GeofenceMiddleware

    clock = Clock()
    engine = engine_for(target, clock, "auto")
    db = engine.country_db
    assert isinstance(db, Reloading)
    # gates[w] opens wave w. A request of wave w that reaches the app stays open (response
    # started, body not sent) until gates[w + 1]: across the next swap.
    gates = [asyncio.Event() for _ in range(ASGI_SWAPS + 2)]
    wave = 0
    decided = 0  # requests of the current wave decided: parked in the app, or denied
    all_decided = asyncio.Event()

    def one_more_decided() -> None:
        nonlocal decided
        decided += 1
        if decided == TASKS:
            all_decided.set()

    async def parking(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        one_more_decided()
        await gates[scope["wave"] + 1].wait()
        await send({"type": "http.response.body", "body": b"ok"})

    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = GeofenceMiddleware(parking, engine=engine)
    probe_app = GeofenceMiddleware(quick, engine=engine)  # the same engine, nothing parks
    # The status each file gives each probe: 451 for a block, 200 otherwise (warn, allow).
    status = {
        ip: {name: 451 if answer[0] == "block" else 200 for name, answer in per_file.items()}
        for ip, per_file in EXPECTED.items()
    }
    failures: list[str] = []
    sent = 0
    checked = 0

    async def request(asgi: Any, ip: str) -> tuple[int, geofence.Decision]:
        scope = {**scope_for(ip), "wave": wave}
        messages: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        await asgi(scope, receive, send)
        return messages[0]["status"], scope["state"]["geofence"]

    async def client(n: int) -> None:
        nonlocal sent
        rng = random.Random(n)
        for gate in gates[1:-1]:
            await gate.wait()
            ip = rng.choice(PROBES) if rng.random() < 0.8 else f"31.43.{n}.{rng.randrange(256)}"
            try:
                code, decision = await request(app, ip)
            except Exception as error:  # any escape is the failure
                failures.append(f"{ip}: raised {error!r}")
                one_more_decided()
                continue
            sent += 1
            if code == 451:
                one_more_decided()  # denied: the app never saw it
            if key(decision) not in allowed(ip) or code not in (200, 451):
                failures.append(f"{ip}: {code} {decision}")

    async def main() -> None:
        nonlocal wave, decided, checked
        clients = [asyncio.ensure_future(client(n)) for n in range(TASKS)]
        current = "A"
        for i, (content, name) in enumerate(schedule(ASGI_SWAPS)):
            # The requests of the previous wave are still open while the file changes.
            install(content, target)
            clock.now += 1
            current = name or current
            wave, decided = i + 1, 0
            all_decided.clear()
            gates[wave].set()
            answers = await asyncio.gather(*(request(probe_app, ip) for ip in PROBES))
            for ip, (code, decision) in zip(PROBES, answers, strict=True):
                assert key(decision) == EXPECTED[ip][current], (i, ip, decision)
                assert code == status[ip][current], (i, ip)
                checked += 1
            # A bound, not a pause: a client that died would otherwise hang the test.
            await asyncio.wait_for(all_decided.wait(), timeout=60)
            assert db.reloads + db.rejections == i + 1
        gates[-1].set()  # the last wave's open requests finish
        await asyncio.gather(*clients)

    asyncio.run(main())
    assert failures == []
    assert (db.reloads, db.rejections) == (ASGI_SWAPS // 2, ASGI_SWAPS // 2)
    assert checked == ASGI_SWAPS * len(PROBES)
    assert sent == TASKS * ASGI_SWAPS
