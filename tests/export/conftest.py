"""Policies and databases the export tests share (the Cloudflare and AWS WAF tests too).

Each policy gets its own City database, written here from the scenario generator's address
plan (:func:`geofence.export._scenarios.address_plan`), so that every region it names has a
client. ``exported(name)`` gives (policy mapping with ``geoip.country_db`` set, clients).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from geofence import load_policy
from geofence.export._scenarios import Client, address_plan, city_records

W1 = datetime(2031, 3, 1, tzinfo=timezone.utc)  # unsupported-regions: warnings start
E1 = datetime(2031, 3, 15, 12, 30, tzinfo=timezone.utc)  # unsupported-regions: blocked
E2 = datetime(2030, 12, 1, tzinfo=timezone.utc)  # sanctioned: blocked (no grace)
E3 = datetime(2031, 6, 1, tzinfo=timezone.utc)  # allowlist: "eu-from-june" starts

POLICIES: dict[str, dict[str, Any]] = {
    # Everything an edge can express, default allow.
    "main": {
        "default": "allow",
        "info_url": "https://example.com/supported-countries",
        "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
        "regions": {"sanctioned": ["CU", "IR", "KP", "SY", "UA-43", "UA-14", "UA-09", "UA-40"]},
        "rules": [
            {
                "name": "partner-hk",
                "action": "allow",
                "regions": ["HK"],
                "hosts": ["partner.example.com"],
            },
            {
                "name": "sanctioned",
                "action": "block",
                "regions": ["@sanctioned"],
                "enforce_from": E2,
                # Its own answer, with what nginx strings must escape.
                "code": "sanctioned_region",
                "message": "Service to this region is prohibited ($HOME \\ \" ' {;}).",
                "info_url": "https://example.com/sanctions?a=1&b=$x",
            },
            {
                "name": "unsupported-regions",
                "action": "block",
                "regions": ["CN", "RU"],
                "paths": ["/v1/*"],
                "warn_from": W1,
                "enforce_from": E1,
                "status": 403,
            },
            {
                "name": "eu-writes",
                "action": "warn",
                "regions": ["@eu"],
                "except_regions": ["DE"],
                "methods": ["POST", "PUT"],
            },
            {"name": "br-probe", "action": "block", "regions": ["BR", "AR"], "mode": "report"},
            {
                "name": "unknown-api",
                "action": "block",
                "regions": ["unknown"],
                "hosts": ["*.example.com"],
                "paths": ["/v1/*"],
            },
            {"name": "reads-only-gb", "action": "block", "regions": ["GB-LND"], "methods": ["GET"]},
        ],
        "exempt": {"ips": ["11.0.9.0/24"], "paths": ["/healthz", "/static/*"]},
    },
    # An allowlist: default block, private clients decided by the rules.
    "allowlist": {
        "default": "block",
        "allow_private": False,
        "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
        "rules": [
            {
                "name": "home-markets",
                "action": "allow",
                "regions": ["US", "GB", "FR"],
                "except_regions": ["GB-LND"],
            },
            {"name": "eu-from-june", "action": "allow", "regions": ["@eu"], "enforce_from": E3},
            {
                "name": "unknown-reads",
                "action": "allow",
                "regions": ["unknown"],
                "methods": ["GET"],
            },
            {
                "name": "ukraine",
                "action": "allow",
                "regions": ["UA"],
                "except_regions": ["UA-43", "UA-14"],
            },
            {"name": "cn-warn", "action": "warn", "regions": ["CN", "MO"], "paths": ["/docs/*"]},
        ],
        "exempt": {"paths": ["/healthz"]},
    },
    # The whole policy in report mode; a block rule on every country but a few, with a grace.
    "report": {
        "mode": "report",
        "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
        "rules": [
            {
                "name": "only-north-america",
                "action": "block",
                "regions": ["*"],
                "except_regions": ["US", "CA", "MX"],
                "warn_from": W1,
                "enforce_from": E1,
            },
        ],
    },
}


def write_city_db(path: Path, clients: list[Client]) -> None:
    writer = MMDBWriter(
        ip_version=6,
        database_type="GeoIP2-City",
        languages=["en"],
        description="geofence export scenario database (made-up data)",
        ipv4_compatible=True,
    )
    for network, record in city_records(clients):
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))


Exported = tuple[dict[str, Any], list[Client]]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Exported]:
    """``exported(name)``: POLICIES[name] with its own City database, and its clients."""
    made: dict[str, Exported] = {}

    def make(name: str) -> Exported:
        if name not in made:
            mapping = copy.deepcopy(POLICIES[name])
            # The plan needs the policy's codes only: load it once without a database.
            clients = address_plan(load_policy(mapping))
            path = tmp_path_factory.mktemp("export-db") / f"{name}-City.mmdb"
            write_city_db(path, clients)
            mapping["geoip"] = {"country_db": str(path)}
            made[name] = (mapping, clients)
        return copy.deepcopy(made[name][0]), made[name][1]

    return make
