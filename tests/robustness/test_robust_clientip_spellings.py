"""Formatting invariance: one address, spelled every legal way, gets one decision.

Port, brackets, quotes, letter case, compressed or expanded IPv6, the IPv4-mapped form, header
name case and surrounding whitespace must not change who the client is, in any header family,
nor the decision the engine takes for it.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import Any

import pytest
from clientip_oracle import HEADERS, SINGLE_VALUED
from clientip_tokens import forwarded_element
from tests_support import CITY_DB

import geofence

# (address, what the policy below must decide for it)
ADDRESSES = {
    "175.16.199.1": ("block", "rule", "CN"),
    "81.2.69.142": ("allow", "default", "GB"),
    "89.160.20.112": ("block", "rule", "SE"),
    "2a02:d0c0::1": ("block", "rule", "RU"),
    "2a02:d2c0::1": ("allow", "default", "IR"),
}
POLICY: dict[str, Any] = {
    "geoip": {"country_db": CITY_DB, "reload_interval": 0},
    "rules": [{"name": "no-cn-se-ru", "action": "block", "regions": ["CN", "SE", "RU"]}],
}


def v4_spellings(text: str) -> list[str]:
    """Bare spellings (usable as a socket peer) of an IPv4 address."""
    address = ipaddress.IPv4Address(text)
    mapped = ipaddress.IPv6Address(f"::ffff:{text}")
    high, low = divmod(int(address), 1 << 16)
    return [
        text,
        f"::ffff:{text}",
        f"::FFFF:{text}",
        f"0:0:0:0:0:ffff:{text}",
        f"::ffff:{high:x}:{low:x}",
        f"::FFFF:{high:04X}:{low:04X}",
        mapped.exploded,
        mapped.exploded.upper(),
    ]


def v6_spellings(text: str) -> list[str]:
    address = ipaddress.IPv6Address(text)
    groups = address.exploded.split(":")
    return [
        text,
        text.upper(),
        address.exploded,
        address.exploded.upper(),
        ":".join(g.lstrip("0") or "0" for g in groups),  # uncompressed, no leading zeros
        ":".join(groups[:4]) + "::" + ":".join(g.lstrip("0") or "0" for g in groups[-1:]),
    ]


def bare_spellings(text: str) -> list[str]:
    if ipaddress.ip_address(text).version == 4:
        return v4_spellings(text)
    return v6_spellings(text)


def node_spellings(bare: str) -> list[str]:
    """A header node for a bare spelling: with and without port and brackets."""
    if ":" not in bare:
        return [bare, f"{bare}:8080", f"{bare}:0"]
    return [bare, f"[{bare}]", f"[{bare}]:443", f"[{bare}]:65535"]


def header_values(header: str, node: str) -> list[str]:
    """How a node appears in ``header``, as the client, with a trusted hop to its right."""
    if header == "forwarded":
        element = forwarded_element(node)
        loud = element.replace("for=", "FOR=", 1)
        quoted = f'for="{node}"'
        return [
            f"{element}, for=10.0.0.5",
            f"{loud};proto=https, For=10.0.0.5",
            f" {quoted} ,for=10.0.0.5",
        ]
    if header in SINGLE_VALUED:
        return [node, f" {node}\t", f'"{node}"']
    return [f"{node}, 10.0.0.5", f'"{node}",10.0.0.5', f"\t{node} , , 10.0.0.5 "]


@cache
def engine(header: str | None) -> geofence.Engine:
    config = dict(POLICY)
    if header is not None:
        config["client_ip"] = {"trusted_proxies": ["10.0.0.0/8"], "header": header}
    return geofence.Engine.from_config(config)


def outcome(decision: geofence.Decision) -> tuple[object, ...]:
    return (decision.action, decision.reason, decision.rule, decision.client_ip, decision.country)


@pytest.mark.parametrize("address", sorted(ADDRESSES))
def test_expected_decision_for_the_canonical_peer(address: str) -> None:
    decision = engine(None).decide(geofence.RequestInfo(peer=address))
    action, reason, country = ADDRESSES[address]
    assert (decision.action, decision.reason, decision.country) == (action, reason, country)
    assert decision.client_ip == address


@pytest.mark.parametrize("address", sorted(ADDRESSES))
def test_every_peer_spelling_decides_alike(address: str) -> None:
    expected = outcome(engine(None).decide(geofence.RequestInfo(peer=address)))
    spellings = bare_spellings(address)
    assert len(set(spellings)) == len(spellings)
    for spelling in spellings:
        decision = engine(None).decide(geofence.RequestInfo(peer=spelling))
        assert outcome(decision) == expected, spelling


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("address", sorted(ADDRESSES))
def test_every_header_spelling_decides_alike(header: str, address: str) -> None:
    expected = outcome(engine(None).decide(geofence.RequestInfo(peer=address)))
    names = [header, header.upper(), header.title()]
    count = 0
    for bare in bare_spellings(address):
        for node in node_spellings(bare):
            for index, value in enumerate(header_values(header, node)):
                request = geofence.RequestInfo(peer="10.0.0.1", headers=[(names[index % 3], value)])
                assert outcome(engine(header).decide(request)) == expected, (header, value)
                count += 1
    assert count >= 50
