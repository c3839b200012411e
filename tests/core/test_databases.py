"""Lookups on real MaxMind test databases, in every reader mode, and every way a file is bad."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import logging
import lzma
import os
import random
import shutil
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests_support import CORRUPT_FILES, reader_modes

from geofence._errors import ConfigError, DatabaseError
from geofence.config import GeoIPPolicy
from geofence.geoip import MODES as READER_MODES
from geofence.geoip import (
    EmbeddedCountryDB,
    GeoRecord,
    Kind,
    iso_countries,
    open_anonymous_db,
    open_country_db,
    open_mmdb,
)
from geofence.geoip import _mmdb as mmdb  # its module settings are patched in some tests

DATA = Path(__file__).parent.parent / "data"
TEST_DATA = DATA / "maxmind" / "test-data"
FIXTURES = DATA / "fixtures"
EXPECTED = json.loads((FIXTURES / "fixtures.json").read_text())

CITY = TEST_DATA / "GeoIP2-City-Test.mmdb"
ANONYMOUS = TEST_DATA / "GeoIP2-Anonymous-IP-Test.mmdb"
MODES = reader_modes()
BAD_FILES = CORRUPT_FILES

CITY_ANSWERS = {
    "81.2.69.142": GeoRecord(True, "GB", ("GB-ENG",)),
    "216.160.83.56": GeoRecord(True, "US", ("US-WA",)),
    "89.160.20.112": GeoRecord(True, "SE", ("SE-E",)),
    "175.16.199.1": GeoRecord(True, "CN", ("CN-22",)),
    "2a02:d0c0::1": GeoRecord(True, "RU", ()),
    "2a02:d2c0::1": GeoRecord(True, "IR", ()),
    "202.196.224.1": GeoRecord(True, "PH", ()),
    "214.1.1.1": GeoRecord(True, None, ()),  # a record without a country
    "1.1.1.1": GeoRecord(False, None, ()),
    "2001:4860::1": GeoRecord(False, None, ()),
}


def country(path: Path | str, mode: str = "auto", **options: Any) -> Any:
    policy = GeoIPPolicy(country_db=str(path), reader=mode, reload_interval=0, **options)
    return open_country_db(policy, time.monotonic)


def anonymous(path: Path | str, mode: str = "auto") -> Any:
    policy = GeoIPPolicy(anonymous_db=str(path), reader=mode, reload_interval=0)
    return open_anonymous_db(policy, time.monotonic)


def load_error(path: Path | str, mode: str = "auto", which: str = "country") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        (country if which == "country" else anonymous)(path, mode)
    return caught.value


# -- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["GeoIP2-City-Test.mmdb", "GeoLite2-City-Test.mmdb"])
def test_city_answers(name: str, mode: str) -> None:
    db = country(TEST_DATA / name, mode)
    assert db.has_subdivisions
    assert db.description == f"{name.removesuffix('-Test.mmdb')} database {str(TEST_DATA / name)!r}"
    answers = dict(CITY_ANSWERS)
    if name.startswith("GeoLite2"):
        answers["214.1.1.1"] = GeoRecord(False, None, ())  # not in the GeoLite2 test data
    for ip, expected in answers.items():
        assert db.lookup(ip) == expected, ip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb"])
def test_country_answers_have_no_subdivisions(name: str, mode: str) -> None:
    db = country(TEST_DATA / name, mode)
    assert not db.has_subdivisions
    assert db.lookup("81.2.69.142") == GeoRecord(True, "GB", ())
    assert db.lookup("2a02:d2c0::1") == GeoRecord(True, "IR", ())
    assert db.lookup("1.1.1.1") == GeoRecord(False, None, ())


@pytest.mark.parametrize("mode", MODES)
def test_enterprise_answers_every_subdivision_level(mode: str) -> None:
    db = country(TEST_DATA / "GeoIP2-Enterprise-Test.mmdb", mode)
    assert db.has_subdivisions
    assert db.lookup("1.231.232.1") == GeoRecord(True, "UA", ("UA-43",))
    assert db.lookup("2.125.160.217") == GeoRecord(True, "GB", ("GB-ENG", "GB-WBK"))
    assert db.lookup("214.1.1.1") == GeoRecord(True, None, ())


@pytest.mark.parametrize("mode", MODES)
def test_ua_fixture(mode: str) -> None:
    db = country(FIXTURES / "GeoIP2-City-UA.mmdb", mode)
    expected = EXPECTED["GeoIP2-City-UA.mmdb"]
    for ip, (code, subdivisions) in expected["found"].items():
        assert db.lookup(ip) == GeoRecord(True, code, tuple(subdivisions)), ip
    for ip in expected["not_found"]:
        assert db.lookup(ip) == GeoRecord(False, None, ())
    # HK and MO are countries of their own, not subdivisions of CN.
    assert db.lookup("1.36.1.1").country == "HK"
    assert db.lookup("60.246.1.1").country == "MO"


@pytest.mark.parametrize("mode", MODES)
def test_anonymous_flags(mode: str) -> None:
    db = anonymous(ANONYMOUS, mode)
    assert db.lookup("1.2.0.1") == frozenset({"vpn"})
    assert db.lookup("65.0.0.1") == frozenset({"tor"})
    assert db.lookup("81.2.69.1") == frozenset(
        {"vpn", "tor", "public_proxy", "residential_proxy", "hosting"}
    )
    assert db.lookup("1.1.1.1") == frozenset()
    assert db.lookup("2001:4860::1") == frozenset()


def test_no_anonymous_db_configured() -> None:
    assert open_anonymous_db(GeoIPPolicy(), time.monotonic) is None


@pytest.mark.parametrize("mode", MODES)
def test_ipv4_only_database_answers_not_found_for_ipv6(mode: str) -> None:
    db = country(FIXTURES / "GeoIP2-City-IPv4-only.mmdb", mode)
    assert db.lookup("81.2.69.142") == GeoRecord(True, "GB", ("GB-ENG",))
    assert db.lookup("2a02:d0c0::1") == GeoRecord(False, None, ())


# -- malformed records: request-time DatabaseError -----------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_malformed_country_records_raise_database_error(mode: str) -> None:
    db = country(FIXTURES / "GeoIP2-City-bad-record.mmdb", mode)  # loads: the walk only decodes
    expected = EXPECTED["GeoIP2-City-bad-record.mmdb"]
    assert "216.160.83.56" in expected["malformed"]
    for ip in expected["malformed"]:
        for _ in range(2):  # a failure is never cached as an answer
            with pytest.raises(DatabaseError):
                db.lookup(ip)
    for ip, code in expected["found"].items():
        assert db.lookup(ip).country == code


@pytest.mark.parametrize("mode", MODES)
def test_malformed_anonymous_records_raise_database_error(mode: str) -> None:
    db = anonymous(FIXTURES / "GeoIP2-Anonymous-IP-bad-record.mmdb", mode)
    expected = EXPECTED["GeoIP2-Anonymous-IP-bad-record.mmdb"]
    for ip in expected["malformed"]:
        with pytest.raises(DatabaseError):
            db.lookup(ip)
    for ip, flags in expected["found"].items():
        assert db.lookup(ip) == frozenset(flags)


def test_reader_exception_becomes_database_error() -> None:
    db = country(CITY)
    with pytest.raises(DatabaseError):
        db.lookup("not an address")


# -- the embedded default ------------------------------------------------------------------


def test_embedded_default() -> None:
    db = open_country_db(GeoIPPolicy(), time.monotonic)
    assert isinstance(db, EmbeddedCountryDB)
    assert not db.has_subdivisions
    assert db.description == "the embedded default (iptocc, RIR data)"
    assert db.lookup("175.16.199.1") == GeoRecord(True, "CN", ())
    assert db.lookup("2a02:d0c0::1").country == "RU"
    assert db.lookup("10.1.2.3") == GeoRecord(False, None, ())


def test_embedded_default_only_answers_iso_countries() -> None:
    db = open_country_db(GeoIPPolicy(), time.monotonic)
    iso = iso_countries()
    rng = random.Random(1)
    found = 0
    for _ in range(3000):
        answer = db.lookup(".".join(str(rng.randrange(1, 224)) for _ in range(4)))
        assert answer.country is None or answer.country in iso
        found += answer.country is not None
    assert found > 1000


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("CN", GeoRecord(True, "CN", ())),
        ("EU", GeoRecord(True, None, ())),  # RIR pseudo-code for "somewhere in Europe"
        ("AP", GeoRecord(True, None, ())),
        ("ZZ", GeoRecord(True, None, ())),
        (None, GeoRecord(False, None, ())),
    ],
)
def test_embedded_pseudo_codes_are_no_country(code: str | None, expected: GeoRecord) -> None:
    assert EmbeddedCountryDB(lambda ip: code).lookup("1.2.3.4") == expected


def test_embedded_failure_is_database_error() -> None:
    def broken(ip: str) -> str | None:
        raise RuntimeError("boom")

    with pytest.raises(DatabaseError):
        EmbeddedCountryDB(broken).lookup("1.2.3.4")
    with pytest.raises(DatabaseError):
        EmbeddedCountryDB(lambda ip: 7).lookup("1.2.3.4")  # type: ignore[arg-type,return-value]


# -- cache ---------------------------------------------------------------------------------


def test_cache_returns_the_same_answer_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmdb, "CACHE_SIZE", 8)
    db = country(CITY)
    first = db.lookup("81.2.69.142")
    assert db.lookup("81.2.69.142") is first
    for i in range(100):
        db.lookup(f"81.2.69.{i}")
        assert len(db.cache) <= 8
    assert db.lookup("81.2.69.142") == first
    # Equal answers are one shared object, whatever the address.
    assert db.lookup("81.2.69.143") is db.lookup("81.2.69.142")


def test_embedded_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from geofence.geoip import _databases as databases

    monkeypatch.setattr(databases, "CACHE_SIZE", 8)
    db = EmbeddedCountryDB(lambda ip: "CN")
    for i in range(100):
        db.lookup(f"1.0.0.{i}")
        assert len(db._cache) <= 8


def test_load_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="geofence"):
        country(CITY)
    [record] = [r for r in caplog.records if r.name == "geofence"]
    assert record.levelno == logging.INFO
    assert "loaded GeoIP2-City database" in record.getMessage()
    assert "built 20" in record.getMessage()


# -- bad files: ConfigError at load --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_bad_files_are_config_errors(path: Path, mode: str) -> None:
    for which in ("country", "anonymous"):
        error = load_error(path, mode, which)
        assert error.key == f"geoip.{which}_db"
        assert str(path) in error.reason


PERMISSIVE: Kind[GeoRecord] = Kind(
    key="geoip.country_db",
    wants="anything",
    subdivisions=lambda database_type: True,
    decoder=lambda decoder: decoder.country,
    empty=GeoRecord(False, None),
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_bad_files_fail_cleanly_even_with_the_right_type(path: Path, mode: str) -> None:
    """Beyond the type check: open, walk and lookups never leak a raw third-party error."""
    try:
        db = open_mmdb(str(path), PERMISSIVE, READER_MODES[mode])
    except ConfigError as error:
        assert error.key == "geoip.country_db"
        return
    for ip in ["81.2.69.142", "1.1.1.1", "216.160.83.56", "2a02:d0c0::1", "::1", "255.255.255.255"]:
        with contextlib.suppress(DatabaseError):
            db.lookup(ip)


def test_broken_double_format_is_refused_by_the_walk() -> None:
    error = load_error(TEST_DATA / "GeoIP2-City-Test-Broken-Double-Format.mmdb")
    assert "is corrupt: a test lookup failed" in error.reason


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "GeoLite2-ASN-Test.mmdb",
            "is a GeoLite2-ASN database; geoip.country_db needs a "
            "GeoIP2/GeoLite2 Country, City or Enterprise database",
        ),
        ("GeoIP2-Anonymous-IP-Test.mmdb", "is a GeoIP2-Anonymous-IP database;"),
        ("MaxMind-DB-test-ipv4-24.mmdb", "is a Test database;"),
    ],
)
def test_wrong_type_for_country(name: str, message: str) -> None:
    assert message in load_error(TEST_DATA / name).reason


def test_wrong_type_for_anonymous() -> None:
    error = load_error(CITY, which="anonymous")
    assert error.key == "geoip.anonymous_db"
    assert error.reason.endswith(
        "is a GeoIP2-City database; geoip.anonymous_db needs a GeoIP2-Anonymous-IP database"
    )


def test_refused_file_never_answers() -> None:
    error = load_error(FIXTURES / "GeoLite2-ASN-with-countries.mmdb")
    assert "GeoLite2-ASN" in error.reason


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def _tar_gz(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("GeoIP2-City_20240101/GeoIP2-City.mmdb")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tar(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("GeoIP2-City.mmdb")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("GeoIP2-City.mmdb", data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (_gzip, "is gzip-compressed; decompress it first"),
        (_tar_gz, "is gzip-compressed; decompress it first"),
        (_tar, "is a tar archive; decompress it first"),
        (_zip, "is a zip archive; decompress it first"),
        (bz2.compress, "is bzip2-compressed; decompress it first"),
        (lzma.compress, "is xz-compressed; decompress it first"),
        (lambda data: b"", "is empty"),
        (lambda data: b"<html>404 Not Found</html>", "is not a valid MaxMind DB file"),
    ],
)
def test_downloaded_but_not_a_database(tmp_path: Path, transform: Any, message: str) -> None:
    path = tmp_path / "GeoIP2-City.mmdb"
    path.write_bytes(transform(CITY.read_bytes()))
    for mode in ("auto", "memory"):
        assert message in load_error(path, mode).reason


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.mmdb")
    assert error.key == "geoip.country_db"
    assert "does not exist" in error.reason
    assert "does not exist" in load_error(tmp_path / "nope" / "x.mmdb", which="anonymous").reason


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in load_error(tmp_path).reason


def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.mmdb"
    os.mkfifo(fifo)  # opening it for reading would block forever
    assert "is not a regular file" in load_error(fifo).reason
    assert "is not a regular file" in load_error("/dev/null").reason


def test_nul_in_path() -> None:
    assert "cannot be read" in load_error("GeoIP2\0.mmdb").reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "GeoIP2-City.mmdb"
    shutil.copy(CITY, path)
    path.chmod(0)
    assert "cannot be read" in load_error(path).reason


@pytest.mark.parametrize("mode", ["auto", "mmap", "memory"])
def test_truncated_anywhere(tmp_path: Path, mode: str) -> None:
    data = CITY.read_bytes()
    path = tmp_path / "GeoIP2-City.mmdb"
    cuts = sorted({1, 16, len(data) // 2, len(data) - 1, *range(len(data) - 600, len(data), 37)})
    for cut in cuts:
        path.write_bytes(data[:cut])
        assert load_error(path, mode).key == "geoip.country_db", cut


@pytest.mark.parametrize("mode", ["auto", "mmap"])
def test_corrupted_bytes_fail_at_load_or_per_lookup(tmp_path: Path, mode: str) -> None:
    """Random damage anywhere: ConfigError at load, or DatabaseError / an answer per lookup."""
    data = CITY.read_bytes()
    rng = random.Random(4)
    path = tmp_path / "GeoIP2-City.mmdb"
    refused = 0
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            db = country(path, mode)
        except ConfigError:
            refused += 1
            continue
        for ip in CITY_ANSWERS:
            try:
                answer = db.lookup(ip)
            except DatabaseError:
                continue
            assert isinstance(answer, GeoRecord)
    assert 0 < refused < 40  # damage outside the walked records still loads


def test_mmap_ext_needs_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmdb, "has_extension", lambda: False)
    error = load_error(CITY, "mmap_ext")
    assert error.key == "geoip.reader"
    assert "C extension" in error.reason
