from __future__ import annotations

from pathlib import Path

import pytest

# pytester runs generated user projects (tests/testing: the geofence pytest plugin).
pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"
MAXMIND = DATA / "maxmind" / "test-data"
BAD_DATA = DATA / "maxmind" / "bad-data"


@pytest.fixture
def maxmind_dir() -> Path:
    return MAXMIND


@pytest.fixture
def city_db() -> str:
    return str(MAXMIND / "GeoIP2-City-Test.mmdb")


@pytest.fixture
def country_db() -> str:
    return str(MAXMIND / "GeoIP2-Country-Test.mmdb")


@pytest.fixture
def anonymous_db() -> str:
    return str(MAXMIND / "GeoIP2-Anonymous-IP-Test.mmdb")
