"""The engine's per-network cache of lookups (issue 15): a new client in a /24 (IPv4) or /48
(IPv6) seen before is answered without a lookup, but only when that block lies inside one
network of every database asked; what each client gets is still what the databases say."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import maxminddb
import pytest
from tests_support import ANON_DB, ASN_DB, CITY_DB, COUNTRY_DB

import geofence
from geofence.geoip._tree import SearchTree

POLICY: dict[str, Any] = {
    "rules": [
        {"name": "vpn", "action": "warn", "anonymizers": ["vpn"]},
        {"name": "asn", "action": "warn", "asns": [1221]},
    ]
}


def _addresses(path: str, rng: random.Random) -> list[str]:
    """For each network of the file: its first and last address, and an address elsewhere in
    the same /24 or /48 (often in another network, or in none)."""
    found: list[str] = []
    with maxminddb.open_database(path) as reader:
        for network, _ in reader:
            if network.version == 6 and network.network_address.ipv4_mapped is not None:
                continue
            first, last = int(network.network_address), int(network.broadcast_address)
            block = 8 if network.version == 4 else 80
            base = first >> block << block
            neighbour = base + rng.randrange(1 << min(block, 16))
            for value in (first, last, neighbour):
                found.append(str(ipaddress.ip_address(value)))
    return found


def _truth(readers: dict[str, Any], ip: str) -> tuple[str | None, str | None, bool, int | None]:
    city = readers["country"].get(ip) or {}
    anon = readers["anon"].get(ip) or {}
    asn = readers["asn"].get(ip) or {}
    return (
        (city.get("country") or {}).get("iso_code"),
        None,
        bool(anon.get("is_anonymous_vpn")),
        asn.get("autonomous_system_number"),
    )


@pytest.mark.parametrize("country_db", [CITY_DB, COUNTRY_DB])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_client_gets_what_the_databases_say(country_db: str, seed: int) -> None:
    rng = random.Random(seed)
    addresses = [
        a
        for path in (country_db, ANON_DB, ASN_DB)
        for a in _addresses(path, rng)
        if not geofence.clientip.is_private(geofence.clientip.parse_ip(a))  # type: ignore[arg-type]
    ]
    rng.shuffle(addresses)
    config = {
        **POLICY,
        "geoip": {"country_db": country_db, "anonymous_db": ANON_DB, "asn_db": ASN_DB},
    }
    engine = geofence.Engine.from_config(config)
    readers = {
        "country": maxminddb.open_database(country_db),
        "anon": maxminddb.open_database(ANON_DB),
        "asn": maxminddb.open_database(ASN_DB),
    }
    checked = 0
    for ip in addresses:
        decision = engine.decide(geofence.RequestInfo(peer=ip, path=f"/{checked % 3}"))
        if decision.client_ip is None or decision.reason in ("private", "exempt_ip"):
            continue
        country, _, vpn, asn = _truth(readers, decision.client_ip)
        assert decision.country == country, ip
        assert ("vpn" in decision.anonymizers) == vpn, ip
        assert decision.asn == asn, ip
        checked += 1
    assert checked > 500


def test_a_block_of_several_networks_is_never_shared() -> None:
    # 81.2.69.142/31 and 81.2.69.160/27 share a /24 but not their records in the City test
    # database; so do the addresses around them, which are in no network at all.
    engine = geofence.Engine.from_config({"geoip": {"country_db": CITY_DB}})
    with maxminddb.open_database(CITY_DB) as reader:
        for ip in ("81.2.69.142", "81.2.69.141", "81.2.69.160", "81.2.69.1", "81.2.69.143"):
            expected = ((reader.get(ip) or {}).get("country") or {}).get("iso_code")
            assert engine.decide(geofence.RequestInfo(peer=ip)).country == expected, ip


def test_a_client_in_a_known_wide_network_takes_no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every lookup the engine makes goes through the tree's finder (the C walk when built, in
    # which case the Python walk is not called at all), and each one walks.
    walks: list[str] = []
    original = SearchTree.finder

    def counting_finder(self: SearchTree, *args: Any, **kwargs: Any) -> Any:
        find = original(self, *args, **kwargs)

        def counted(ip: Any) -> Any:
            walks.append(ip.text)
            return find(ip)

        return counted

    monkeypatch.setattr(SearchTree, "finder", counting_finder)
    engine = geofence.Engine.from_config({"geoip": {"country_db": CITY_DB, "reader": "auto"}})
    # 2.125.160.216 lies in 2.125.160.216/29 (a network narrower than /24): every client of
    # that /24 is walked. 89.160.20.112/28 likewise. The /24s of 2001:218::/32 (JP) are not.
    first = engine.decide(geofence.RequestInfo(peer="2001:218::1"))
    assert first.country == "JP" and walks == ["2001:218::1"]
    second = engine.decide(geofence.RequestInfo(peer="2001:218::2"))
    assert second.country == "JP" and walks == ["2001:218::1"]  # answered by its /48
    engine.decide(geofence.RequestInfo(peer="2.125.160.216"))
    engine.decide(geofence.RequestInfo(peer="2.125.160.217"))
    assert walks[1:] == ["2.125.160.216", "2.125.160.217"]
