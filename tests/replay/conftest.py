"""Shared by the replay tests: the golden logs' folder and two policies on the MaxMind City
test database (175.16.199.1 CN, 2a02:d0c0::1 RU, 81.2.69.142 GB, 89.160.20.112 SE,
2001:218::1 JP, 216.160.83.56 US)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests_support import CITY_DB

LOGS = Path(__file__).parent / "logs"


def new_policy() -> dict[str, Any]:
    """Blocks CN and RU from 2024-07-09 (warns from 2024-06-25); warns GB on /v1/*; blocks
    SE on www.example.com only (a host rule); JP in a report-mode rule."""
    return {
        "client_ip": {"trusted_proxies": ["10.0.0.0/8"]},
        "geoip": {"country_db": CITY_DB},
        "rules": [
            {
                "name": "unsupported",
                "action": "block",
                "regions": ["CN", "RU"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2024-07-09T00:00:00Z",
            },
            {"name": "gb-api", "action": "warn", "regions": ["GB"], "paths": ["/v1/*"]},
            {"name": "www-se", "action": "block", "regions": ["SE"], "hosts": ["www.example.com"]},
            {"name": "jp-dry-run", "action": "block", "regions": ["JP"], "mode": "report"},
        ],
    }


def old_policy() -> dict[str, Any]:
    """Blocks RU, always."""
    return {
        "client_ip": {"trusted_proxies": ["10.0.0.0/8"]},
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "russia", "action": "block", "regions": ["RU"]}],
    }


@pytest.fixture
def logs() -> Path:
    return LOGS


@pytest.fixture
def policy() -> dict[str, Any]:
    return new_policy()


@pytest.fixture
def baseline() -> dict[str, Any]:
    return old_policy()
