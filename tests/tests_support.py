"""Paths shared by the tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"
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
