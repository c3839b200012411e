"""The oracle itself, checked against DESIGN.md's "Client IP" sentences one by one.

The matrix trusts the oracle; these literal expectations are what the oracle is trusted for.
The library must meet them too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from clientip_oracle import HEADERS, SINGLE_VALUED, OraclePolicy, resolve
from clientip_tokens import TRUSTED, nat64, six_to_four, teredo

from geofence.clientip import HEADER_NAMES, SINGLE_VALUED_HEADERS, ClientResolver
from geofence.config import ClientIPPolicy

CIDR = OraclePolicy(trusted_proxies=TRUSTED)
FWD = OraclePolicy(trusted_proxies=TRUSTED, header="forwarded")
REAL = OraclePolicy(trusted_proxies=TRUSTED, header="x-real-ip")
HOPS1 = OraclePolicy(hops=1)
HOPS2 = OraclePolicy(hops=2)
NONE = OraclePolicy()


def xff(value: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", value)]


CASES = [
    # By default the socket peer, and every forwarding header is ignored.
    (NONE, "81.2.69.142", xff("175.16.199.1"), "81.2.69.142"),
    (NONE, None, xff("175.16.199.1"), None),
    # Read only when the peer is trusted.
    (CIDR, "89.160.20.112", xff("175.16.199.1"), "89.160.20.112"),
    (CIDR, "10.0.0.1", xff("175.16.199.1"), "175.16.199.1"),
    # Walked from the right past trusted hops; what lies left of the client is never read.
    (CIDR, "10.0.0.1", xff("garbage, 175.16.199.1, 10.0.0.2, 10.0.0.3"), "175.16.199.1"),
    (CIDR, "10.0.0.1", xff("175.16.199.1, 81.2.69.142, 10.0.0.2"), "81.2.69.142"),
    # hops = N: the N-th entry from the right.
    (HOPS1, "192.0.2.1", xff("175.16.199.1, 81.2.69.142"), "81.2.69.142"),
    (HOPS2, "192.0.2.1", xff("175.16.199.1, 81.2.69.142"), "175.16.199.1"),
    (HOPS2, "192.0.2.1", xff("not-an-ip, 175.16.199.1, 81.2.69.142"), "175.16.199.1"),
    # Empty elements are skipped.
    (HOPS2, "192.0.2.1", xff("175.16.199.1, , 81.2.69.142,"), "175.16.199.1"),
    # Repeated header lines are joined in order.
    (HOPS2, "1.1.1.1", [*xff("175.16.199.1"), ("x-forwarded-for", "81.2.69.142")], "175.16.199.1"),
    # Malformed or ambiguous: unresolved, never the proxy's address.
    (CIDR, "10.0.0.1", xff("81.2.69.142, garbage"), None),
    (CIDR, "10.0.0.1", xff("fe80::1%eth0"), None),
    (CIDR, "10.0.0.1", xff("081.002.069.142"), None),
    (CIDR, "10.0.0.1", xff("0x5102458e"), None),
    (CIDR, "10.0.0.1", xff("1359103374"), None),
    (REAL, "10.0.0.1", [("X-Real-IP", "81.2.69.142, 89.160.20.112")], None),
    (REAL, "10.0.0.1", [("X-Real-IP", "81.2.69.142"), ("X-Real-IP", "81.2.69.142")], None),
    (REAL, "10.0.0.1", [("X-Real-IP", "81.2.69.142")], "81.2.69.142"),
    (HOPS2, "192.0.2.1", xff("81.2.69.142"), None),
    (CIDR, "10.0.0.1", [], None),
    (CIDR, "10.0.0.1", xff("10.0.0.2, 10.0.0.3"), None),
    # Ports, brackets and quotes are stripped.
    (CIDR, "10.0.0.1", xff("81.2.69.142:443"), "81.2.69.142"),
    (CIDR, "10.0.0.1", xff("[2A02:D0C0::1]:443"), "2a02:d0c0::1"),
    (CIDR, "10.0.0.1", xff('"81.2.69.142"'), "81.2.69.142"),
    # RFC 7239: quoted IPv6 with port, case-insensitive names, unknown / obfuscated.
    (FWD, "10.0.0.1", [("Forwarded", 'FOR="[2a02:d0c0::1]:4711";proto=https')], "2a02:d0c0::1"),
    (FWD, "10.0.0.1", [("Forwarded", "for=81.2.69.142, for=10.0.0.2")], "81.2.69.142"),
    (FWD, "10.0.0.1", [("Forwarded", "for=unknown")], None),
    (FWD, "10.0.0.1", [("Forwarded", "for=_hidden")], None),
    (FWD, "10.0.0.1", [("Forwarded", "proto=https")], None),
    # Embedded IPv4 counts as IPv4, for the client and for trust.
    (CIDR, "10.0.0.1", xff("::ffff:175.16.199.1"), "175.16.199.1"),
    (CIDR, "10.0.0.1", xff(six_to_four("175.16.199.1")), "175.16.199.1"),
    (CIDR, "10.0.0.1", xff(nat64("175.16.199.1")), "175.16.199.1"),
    (CIDR, "10.0.0.1", xff(teredo("175.16.199.1", server="81.2.69.142")), "175.16.199.1"),
    (CIDR, "::ffff:10.0.0.1", xff("175.16.199.1"), "175.16.199.1"),
    (CIDR, six_to_four("10.0.0.1"), xff("175.16.199.1"), "175.16.199.1"),
    (CIDR, "10.0.0.1", xff(f"175.16.199.1, {nat64('10.0.0.2')}"), "175.16.199.1"),
    # A zone id on the peer is stripped; the peer is then a (link-local) client.
    (NONE, "fe80::1%eth0", [], "fe80::1"),
    # IPv4-compatible, multicast, unspecified and broadcast are unresolved.
    (CIDR, "10.0.0.1", xff("::81.2.69.142"), None),
    (CIDR, "10.0.0.1", xff("224.0.0.1"), None),
    (CIDR, "10.0.0.1", xff("ff02::1"), None),
    (CIDR, "10.0.0.1", xff("::"), None),
    (CIDR, "10.0.0.1", xff("0.0.0.0"), None),
    (CIDR, "10.0.0.1", xff("255.255.255.255"), None),
    (CIDR, "10.0.0.1", xff("::ffff:255.255.255.255"), None),
    (NONE, "224.0.0.1", [], None),
    # ::1 is loopback, not an IPv4-compatible address.
    (CIDR, "10.0.0.1", xff("::1"), "::1"),
]


def test_the_oracle_knows_every_forwarding_header() -> None:
    # The oracle spells the headers itself (it shares no code with the library). A row added to
    # the library's table must be taught to the oracle too, or the matrix and the fuzz, which
    # loop over the oracle's headers, would never try it.
    assert sorted(HEADERS) == sorted(HEADER_NAMES)
    assert set(SINGLE_VALUED_HEADERS) == SINGLE_VALUED


@pytest.mark.parametrize(("policy", "peer", "headers", "expected"), CASES)
def test_oracle_follows_design(
    policy: OraclePolicy, peer: str | None, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert resolve(policy, peer, headers) == expected


def library(policy: OraclePolicy, peer: str | None, headers: list[tuple[str, str]]) -> str | None:
    config = ClientIPPolicy(policy.trusted_proxies, policy.header, policy.hops)
    ip = ClientResolver(config).resolve(peer, headers).ip
    return None if ip is None else ip.text


@pytest.mark.parametrize(("policy", "peer", "headers", "expected"), CASES)
def test_library_follows_design(
    policy: OraclePolicy, peer: str | None, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert library(policy, peer, headers) == expected


LINK_LOCAL = OraclePolicy(trusted_proxies=(ipaddress.IPv6Network("fe80::/10"),))


Resolve = Callable[[OraclePolicy, str | None, list[tuple[str, str]]], str | None]


@pytest.mark.parametrize("implementation", [resolve, library])
def test_link_local_trust_strips_the_peer_zone(implementation: Resolve) -> None:
    assert implementation(LINK_LOCAL, "fe80::1%eth0", xff("81.2.69.142")) == "81.2.69.142"
    assert implementation(LINK_LOCAL, "fe80::1%eth0", xff("fe80::2%eth0")) is None
