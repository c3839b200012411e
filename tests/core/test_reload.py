"""Reloading a database replaced on disk: validated before the swap, never a failed lookup.

Time is an injected clock; nothing here sleeps. Replacements are atomic (``os.replace``, what
geoipupdate does), each with its own mtime, as files from different builds have: in a tight
loop a freed inode can otherwise come back with the same size within one timestamp tick.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from geofence._errors import DatabaseError
from geofence.config import GeoIPPolicy
from geofence.geoip import GeoRecord, MaxMindDB, Reloading, open_country_db
from geofence.geoip import _databases as databases  # where open_mmdb is patched
from geofence.hotpath import load

DATA = Path(__file__).parent.parent / "data"
TEST_DATA = DATA / "maxmind" / "test-data"
CITY = (TEST_DATA / "GeoIP2-City-Test.mmdb").read_bytes()  # "A"
UA = (DATA / "fixtures" / "GeoIP2-City-UA.mmdb").read_bytes()  # "B"
COUNTRY = (TEST_DATA / "GeoIP2-Country-Test.mmdb").read_bytes()
KP_EVERYWHERE = (DATA / "fixtures" / "GeoLite2-ASN-with-countries.mmdb").read_bytes()

INVALID = {
    "empty": b"",
    "truncated": CITY[: len(CITY) // 2],
    "gzip": gzip.compress(CITY),
    "html": b"<html>503 Service Unavailable</html>",
    "wrong-type-answering-KP": KP_EVERYWHERE,
    "broken-double-format": (TEST_DATA / "GeoIP2-City-Test-Broken-Double-Format.mmdb").read_bytes(),
    "anonymous-ip": (TEST_DATA / "GeoIP2-Anonymous-IP-Test.mmdb").read_bytes(),
}

NOT_FOUND = GeoRecord(False, None, ())
CRIMEA = GeoRecord(True, "UA", ("UA-43",))
# What each valid file answers; a refused file would answer something else (KP, or an error).
ANSWERS = {
    "81.2.69.142": {GeoRecord(True, "GB", ("GB-ENG",))},  # the same in A and B
    "31.43.1.1": {NOT_FOUND, CRIMEA},  # A: not found, B: UA-43
    "2a02:d2c0::1": {GeoRecord(True, "IR", ()), NOT_FOUND},  # A: IR, B: not found
    "175.16.199.1": {GeoRecord(True, "CN", ("CN-22",))},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_mtimes = itertools.count(1_600_000_000)


def install(content: bytes, target: Path) -> None:
    """Replace ``target`` atomically, like geoipupdate."""
    tmp = target.with_name(target.name + ".download")
    tmp.write_bytes(content)
    seconds = next(_mtimes)
    os.utime(tmp, ns=(seconds * 10**9, seconds * 10**9))
    os.replace(tmp, target)


def reloading(target: Path, clock: Clock, mode: str = "auto", interval: float = 60) -> Any:
    policy = GeoIPPolicy(country_db=str(target), reader=mode, reload_interval=interval)
    db = open_country_db(policy, clock)
    assert isinstance(db, Reloading)
    return db


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "geofence" and r.levelno >= logging.ERROR]


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "GeoIP2-City.mmdb"
    install(CITY, path)
    return path


def test_replacement_is_picked_up_after_the_interval(
    target: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    db = reloading(target, clock, interval=60)
    assert db.lookup("31.43.1.1") == NOT_FOUND  # cached from here on
    install(UA, target)
    clock.now += 59.9
    assert db.lookup("31.43.1.1") == NOT_FOUND  # not checked yet
    assert db.lookup("31.43.2.2") == NOT_FOUND  # a miss does not check early either
    with caplog.at_level(logging.INFO, logger="geofence"):
        clock.now += 0.1
        assert db.lookup("31.43.1.1") == CRIMEA  # the old file's cached answer is gone
    assert db.reloads == 1
    assert db.rejections == 0
    assert any("reloaded GeoIP2-City database" in r.getMessage() for r in caplog.records)
    assert errors(caplog) == []


def test_unchanged_file_is_not_reopened(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    db = reloading(target, clock)
    opened: list[str] = []
    real = databases.open_mmdb

    def counting(*args: Any) -> Any:
        opened.append(args[0])
        return real(*args)

    monkeypatch.setattr(databases, "open_mmdb", counting)
    for _ in range(20):
        clock.now += 60
        assert db.lookup("81.2.69.142").country == "GB"
    assert opened == []
    install(UA, target)
    clock.now += 60
    db.lookup("81.2.69.142")
    assert opened == [str(target)]


@pytest.mark.parametrize("name", INVALID)
def test_bad_replacement_keeps_the_old_database_and_logs_once(
    target: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    db = reloading(target, clock)
    install(INVALID[name], target)
    for _ in range(5):
        clock.now += 60
        for ip, answers in ANSWERS.items():
            assert db.lookup(ip) in answers
        assert db.lookup("2a02:d2c0::1").country == "IR"  # still file A
    [record] = errors(caplog)
    assert "geoip.country_db" in record.getMessage()
    assert "still using the database loaded before" in record.getMessage()
    assert db.rejections == 1
    assert db.reloads == 0
    # A good file afterwards is taken.
    install(UA, target)
    clock.now += 60
    assert db.lookup("31.43.1.1") == CRIMEA
    assert db.reloads == 1


def test_city_replaced_by_country_is_refused(
    target: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Subdivision rules were accepted against a City database: they must keep working."""
    clock = Clock()
    db = reloading(target, clock)
    install(COUNTRY, target)
    clock.now += 60
    assert db.lookup("81.2.69.142").subdivisions == ("GB-ENG",)
    assert db.has_subdivisions
    [record] = errors(caplog)
    assert "without the subdivisions" in record.getMessage()


def test_vanished_file_keeps_the_old_database_and_logs_once(
    target: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    db = reloading(target, clock)
    target.unlink()
    for _ in range(5):
        clock.now += 60
        assert db.lookup("81.2.69.142").country == "GB"
        assert db.lookup("2a02:d2c0::1").country == "IR"
    [record] = errors(caplog)
    assert "cannot be checked for updates" in record.getMessage()
    install(UA, target)
    clock.now += 60
    assert db.lookup("31.43.1.1") == CRIMEA


def test_no_reload_when_the_interval_is_zero(target: Path) -> None:
    clock = Clock()
    db = open_country_db(GeoIPPolicy(country_db=str(target), reload_interval=0), clock)
    assert isinstance(db, MaxMindDB)
    install(UA, target)
    clock.now += 10**6
    assert db.lookup("31.43.1.1") == NOT_FOUND


def test_a_reload_problem_never_fails_the_lookup(
    target: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    db = reloading(target, clock)

    def explode(*args: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(databases, "open_mmdb", explode)
    install(UA, target)
    clock.now += 60
    assert db.lookup("81.2.69.142").country == "GB"
    assert len(errors(caplog)) == 1


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _maps(folder: Path) -> int:
    with open("/proc/self/maps") as maps:
        return sum(str(folder) in line for line in maps)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("mode", "swaps"),
    [
        ("auto", 200),  # the C extension when installed, else pure-Python mmap
        ("mmap", 10),
        ("memory", 10),
        ("file", 10),
    ],
)
def test_swaps_under_concurrent_lookups(
    tmp_path: Path, mode: str, swaps: int, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "GeoIP2-City.mmdb"
    install(CITY, target)
    clock = Clock()
    fds_before, maps_before = _fds(), _maps(tmp_path)
    db = reloading(target, clock, mode, interval=1)
    fds_open, maps_open = _fds(), _maps(tmp_path)
    mapped = mode in ("auto", "mmap_ext", "mmap")
    # On the compiled build geofence maps the file too, to read records in place, and before
    # 3.13 Python's mmap keeps a duplicate of the descriptor (geofence.geoip._mmdb._map).
    in_place = mapped and load("_mmdbdata") is not None
    assert maps_open == maps_before + mapped + in_place
    # Pure-Python mmap keeps a duplicate descriptor; "file" reads through one.
    assert fds_open == fds_before + (mode in ("mmap", "file")) + (
        in_place and sys.version_info < (3, 13)
    )

    stop = threading.Event()
    failures: list[str] = []
    counts = [0] * 8

    def worker(n: int) -> None:
        rng = random.Random(n)
        probes = list(ANSWERS)
        while not stop.is_set():
            if rng.random() < 0.2:  # a new address: the miss path, straight to the reader
                ip = f"31.43.{rng.randrange(256)}.{rng.randrange(256)}"
                allowed = ANSWERS["31.43.1.1"]
            else:
                ip = rng.choice(probes)
                allowed = ANSWERS[ip]
            try:
                answer = db.lookup(ip)
            except DatabaseError as error:
                failures.append(f"{ip}: {error}")
                continue
            if answer not in allowed:
                failures.append(f"{ip}: {answer}")
            counts[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    # Hand the GIL over often: each file operation of this thread and of the reloading one
    # releases it, and would otherwise wait a full default interval (5 ms) to get it back.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.00002)
    for thread in threads:
        thread.start()
    valid, invalid = 0, 0
    bad = list(INVALID.values())
    current_is_ua = False
    try:
        for i in range(swaps):
            if i % 2 == 0:
                current_is_ua = not current_is_ua
                install(UA if current_is_ua else CITY, target)
                valid += 1
            else:
                install(bad[(i // 2) % len(bad)], target)
                invalid += 1
            clock.now += 1
            for _ in range(10**6):  # until some thread has checked the new file
                if db.reloads + db.rejections == i + 1:
                    break
                db.lookup("81.2.69.142")
            assert db.reloads == valid and db.rejections == invalid
            # The database in use is always the last valid file.
            expected = CRIMEA if current_is_ua else NOT_FOUND
            assert db.lookup(f"31.43.{i % 256}.{i // 256}") == expected
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(switch)
    assert failures == []
    assert min(counts) > 0
    assert len(errors(caplog)) == invalid  # one record per refused file, not per check
    assert _fds() == fds_open
    assert _maps(tmp_path) == maps_open  # old files unmapped: only the current one is left


_TRUNCATE = """
import os, sys, time
from geofence.geoip import open_country_db
from geofence.config import GeoIPPolicy
path, mode = sys.argv[1], sys.argv[2]
db = open_country_db(GeoIPPolicy(country_db=path, reader=mode, reload_interval=0), time.monotonic)
os.truncate(path, 0)  # an in-place overwrite (cp, curl -o) starts like this
print(db.lookup("81.2.69.142").country)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="SIGBUS on a truncated mapping is Linux")
@pytest.mark.parametrize("mode", ["auto", "memory"])
def test_in_place_overwrite_kills_mmap_readers_but_not_memory(tmp_path: Path, mode: str) -> None:
    """What the README warns about: replace atomically, or use reader = "memory"."""
    target = tmp_path / "GeoIP2-City.mmdb"
    install(CITY, target)
    result = subprocess.run(
        [sys.executable, "-c", _TRUNCATE, str(target), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if mode == "memory":
        assert (result.returncode, result.stdout) == (0, "GB\n")
    else:
        assert result.returncode == -signal.SIGBUS
