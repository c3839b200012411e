"""Paths shared by the tests (importable by name: tests/helpers is on pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent.parent / "data"
MAXMIND = DATA / "maxmind" / "test-data"
BAD_DATA = DATA / "maxmind" / "bad-data"
FIXTURES = DATA / "fixtures"

CITY_DB = str(MAXMIND / "GeoIP2-City-Test.mmdb")
COUNTRY_DB = str(MAXMIND / "GeoIP2-Country-Test.mmdb")
ENTERPRISE_DB = str(MAXMIND / "GeoIP2-Enterprise-Test.mmdb")
ANON_DB = str(MAXMIND / "GeoIP2-Anonymous-IP-Test.mmdb")
ASN_DB = str(MAXMIND / "GeoLite2-ASN-Test.mmdb")
BAD_RECORD_DB = str(FIXTURES / "GeoIP2-City-bad-record.mmdb")
UA_CITY_DB = str(FIXTURES / "GeoIP2-City-UA.mmdb")

# MaxMind's broken files: everything in bad-data plus the broken ones among the test data.
BROKEN_TEST_DATA = (
    "GeoIP2-City-Test-Broken-Double-Format.mmdb",
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    "MaxMind-DB-test-broken-pointers-24.mmdb",
    "MaxMind-DB-test-broken-search-tree-24.mmdb",
)
CORRUPT_FILES = sorted(BAD_DATA.rglob("*.mmdb")) + [MAXMIND / name for name in BROKEN_TEST_DATA]


def reader_modes() -> list[str]:
    """Every geoip.reader mode this machine supports (mmap_ext needs the C extension)."""
    from geofence.geoip import _mmdb as mmdb

    modes = ["auto", "mmap_ext", "mmap", "memory", "file"]
    return modes if mmdb.has_extension() else [m for m in modes if m != "mmap_ext"]
