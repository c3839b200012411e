"""Strict address parsing, embedded IPv4 forms, special ranges and network sets."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofence.clientip import (
    IP,
    PRIVATE_TABLE,
    NetworkSet,
    is_private,
    parse_ip,
    parse_peer,
    unusable_reason,
)
from geofence.clientip import _addresses as addresses  # for its cache only

# -- parse_ip: what is accepted, and its canonical text ----------------------------------------

VALID = [
    ("81.2.69.142", "81.2.69.142", 4),
    ("0.0.0.0", "0.0.0.0", 4),
    ("255.255.255.255", "255.255.255.255", 4),
    ("1.0.10.100", "1.0.10.100", 4),
    ("::", "::", 6),
    ("::1", "::1", 6),
    ("2a02:d0c0::1", "2a02:d0c0::1", 6),
    ("2A02:D0C0::1", "2a02:d0c0::1", 6),
    ("2a02:D0c0:0000:0000:0000:0000:0000:0001", "2a02:d0c0::1", 6),
    ("2a02:d0c0:0:0:0:0:0:1", "2a02:d0c0::1", 6),
    ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3:8d3:1319:8a2e:370:7348", 6),
    ("1:0:0:1:0:0:0:1", "1:0:0:1::1", 6),  # the longest run is compressed
    ("1:0:0:1:1:0:0:1", "1::1:1:0:0:1", 6),  # the first of equal runs
    ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1", 6),  # a single zero group stays
    ("1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7", 6),  # "::" for one group is valid input
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0", 6),
    ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8", 6),
    ("fe80::", "fe80::", 6),
    ("ff02::1", "ff02::1", 6),
    ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304", 6),  # dotted tail, not an embedding range
    ("::1.2.3.4", "::102:304", 6),  # IPv4-compatible: parsed, then unusable
]


@pytest.mark.parametrize(("token", "text", "version"), VALID)
def test_valid_forms(token: str, text: str, version: int) -> None:
    ip = parse_ip(token)
    assert ip is not None
    assert (ip.text, ip.version) == (text, version)
    reference = ipaddress.ip_address(token)
    assert ip.value == int(reference)
    assert ip.text == str(reference) or ip.text == reference.compressed


INVALID = [
    "",
    " ",
    "01.2.3.4",  # leading zero (octal to C resolvers)
    "1.2.3.04",
    "00.0.0.0",
    "0121.2.69.142",
    "0x51.2.69.142",  # hex (the MaxMind C reader accepts this)
    "0x5102458e",
    "1359103374",  # integer
    "81.2.69",  # short forms
    "81.2",
    "81",
    "81.2.69.142.",
    ".81.2.69.142",
    "81..69.142",
    "256.2.69.142",
    "81.2.69.1420",
    "1.2.3.4.5",
    "+81.2.69.142",
    "-81.2.69.142",
    " 81.2.69.142",
    "81.2.69.142 ",
    "81.2.69.142\n",
    "81.2. 69.142",
    "81.2.69.142\x00",
    "٨١.2.69.142",  # Arabic-Indic digits: int() reads them
    "８１.2.69.142",  # fullwidth digits
    "81.2.69.١٤٢",
    "81.2.69.142:80",
    "[2a02:d0c0::1]",
    "2a02:d0c0::1%eth0",  # zone ids are malformed in tokens
    "fe80::1%1",
    ":",
    ":::",
    "1:::2",
    "1::2::3",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    "1:2:3:4::5:6:7:8",
    "12345::",
    "g::1",
    "2a02:d0c0::1_0",
    "0x2a02::1",
    "+2a02::1",
    "2a02::١",
    "::ffff:01.2.3.4",  # the dotted tail is as strict as IPv4
    "::ffff:1.2.3",
    "::ffff:1.2.3.4.5",
    "::1.2.3.4:5",
    "1.2.3.4::",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::ffff:1.2.3.4%eth0",
    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555",
    "1" * 46,
    "1." * 30,
]


@pytest.mark.parametrize("token", INVALID)
def test_malformed_forms(token: str) -> None:
    assert parse_ip(token) is None
    assert parse_ip(token) is None  # and the cached answer is the same


# -- embedded IPv4 -----------------------------------------------------------------------------

EMBEDDED = [
    ("::ffff:81.2.69.142", "81.2.69.142"),
    ("::FFFF:81.2.69.142", "81.2.69.142"),
    ("::ffff:5102:458e", "81.2.69.142"),
    ("0:0:0:0:0:ffff:81.2.69.142", "81.2.69.142"),
    ("2002:5102:458e::", "81.2.69.142"),  # 6to4
    ("2002:5102:458e:1:2:3:4:5", "81.2.69.142"),
    ("64:ff9b::81.2.69.142", "81.2.69.142"),  # NAT64
    ("64:ff9b::5102:458e", "81.2.69.142"),
    # Teredo (RFC 4380 section 4 example): the client is the inverted last 32 bits.
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
    ("2001::aefd:ba71", "81.2.69.142"),
    ("::ffff:10.0.0.1", "10.0.0.1"),
    ("::ffff:0.0.0.0", "0.0.0.0"),
    ("2002::", "0.0.0.0"),
]


@pytest.mark.parametrize(("token", "v4"), EMBEDDED)
def test_embedded_ipv4_is_returned_as_ipv4(token: str, v4: str) -> None:
    ip = parse_ip(token)
    assert ip == IP(v4, 4, int(ipaddress.IPv4Address(v4)))


def test_embedded_forms_agree_with_ipaddress() -> None:
    rng = random.Random(7)
    for _ in range(500):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
        sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | rng.getrandbits(80))
        teredo = ipaddress.IPv6Address(
            (0x20010000 << 96) | (rng.getrandbits(64) << 32) | (~int(v4) & 0xFFFFFFFF)
        )
        nat64 = ipaddress.IPv6Address((0x64FF9B << 96) | int(v4))
        assert mapped.ipv4_mapped == v4
        assert sixtofour.sixtofour == v4
        assert teredo.teredo is not None and teredo.teredo[1] == v4
        for address in (mapped, sixtofour, teredo, nat64):
            for spelling in (str(address), address.exploded, address.exploded.upper()):
                ip = parse_ip(spelling)
                assert ip is not None and (ip.text, ip.version) == (str(v4), 4), spelling


# -- agreement with ipaddress on random addresses ----------------------------------------------


def _embeds_v4(address: ipaddress.IPv6Address) -> bool:
    value = int(address)
    return (
        value >> 32 in (0xFFFF, 0x64FF9B << 64)
        or value >> 112 == 0x2002
        or value >> 96 == 0x20010000
    )


def _spellings(address: ipaddress.IPv6Address) -> list[str]:
    groups = address.exploded.split(":")
    short = ":".join(g.lstrip("0") or "0" for g in groups)
    return [str(address), address.exploded, address.exploded.upper(), short, short.upper()]


def test_random_ipv6_agrees_with_ipaddress() -> None:
    rng = random.Random(11)
    for _ in range(1500):
        # Many zero groups, so "::" lands in every position.
        groups = [0 if rng.random() < 0.5 else rng.getrandbits(16) for _ in range(8)]
        address = ipaddress.IPv6Address(sum(g << (112 - 16 * i) for i, g in enumerate(groups)))
        if _embeds_v4(address):
            continue
        for spelling in _spellings(address):
            ip = parse_ip(spelling)
            assert ip is not None, spelling
            assert (ip.text, ip.version, ip.value) == (str(address), 6, int(address)), spelling


def test_eight_full_groups_in_every_spelling() -> None:
    """Eight four-digit groups: the canonical text and the spellings one character away from
    it (a group led by a zero, upper case), 6to4 among them (an embedded IPv4 client)."""
    rng = random.Random(39)
    for _ in range(1500):
        groups = [rng.randrange(0x1000, 0x10000) for _ in range(8)]
        if rng.random() < 0.2:
            groups[0] = 0x2002  # 6to4: the client is the IPv4 address in groups 1 and 2
        address = ipaddress.IPv6Address(sum(g << (112 - 16 * i) for i, g in enumerate(groups)))
        canonical = str(address)
        assert len(canonical) == 39
        led = rng.randrange(8)
        small = groups[:]
        small[led] >>= 4 * rng.randrange(1, 4)  # 0abc, 00ab or 000a when written in full
        address_small = ipaddress.IPv6Address(sum(g << (112 - 16 * i) for i, g in enumerate(small)))
        spellings = {
            canonical: address,
            canonical.upper(): address,
            canonical[:-1] + canonical[-1].upper(): address,
            address_small.exploded: address_small,
            str(address_small): address_small,
        }
        for spelling, meant in spellings.items():
            ip = parse_ip(spelling)
            assert ip is not None, spelling
            if _embeds_v4(meant):
                assert ip.version == 4, spelling
                assert ip.value == int(meant) >> 80 & 0xFFFFFFFF, spelling
            else:
                assert (ip.text, ip.version, ip.value) == (str(meant), 6, int(meant)), spelling


@pytest.mark.parametrize(
    "token",
    ["2a02:d0c0::1\x00", "2a02:d0c0::\udc80", "2a02:d0c0:1:2:3:4:5:6\x00", "1:2:3:4:5:6:7:8:9"],
)
def test_what_the_socket_parser_refuses_is_refused(token: str) -> None:
    assert parse_ip(token) is None
    assert parse_peer(token) is None


def test_random_ipv4_agrees_with_ipaddress() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        assert parse_ip(str(address)) == IP(str(address), 4, int(address))


@given(st.ip_addresses())
def test_any_address_round_trips(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    ip = parse_ip(str(address))
    assert ip is not None
    assert parse_ip(ip.text) == ip
    assert ipaddress.ip_address(ip.text) == ipaddress.ip_address(ip.text)  # valid text
    if ip.version == 6:
        assert int(ipaddress.ip_address(ip.text)) == ip.value == int(address)


@given(st.text(alphabet="0123456789abcdefABCDEF:.[]%x ", max_size=50))
def test_parse_ip_is_never_laxer_than_ipaddress(token: str) -> None:
    ip = parse_ip(token)
    if ip is None:
        return
    # ipaddress accepts zone ids; everything parse_ip accepts it accepts too.
    assert "%" not in token
    reference = ipaddress.ip_address(token)
    if ip.version == 6:
        assert ip.value == int(reference)


# -- parse_peer --------------------------------------------------------------------------------

PEERS = [
    ("81.2.69.142", "81.2.69.142"),
    ("::ffff:81.2.69.142", "81.2.69.142"),
    ("fe80::1%eth0", "fe80::1"),
    ("fe80::1%25", "fe80::1"),
    ("[2a02:d0c0::1]", "2a02:d0c0::1"),
    ("[fe80::1%eth0]", "fe80::1"),
    ("2A02:D0C0::1", "2a02:d0c0::1"),
    (None, None),
    ("", None),
    ("garbage", None),
    ("81.2.69.142%eth0", None),  # zone ids are IPv6 only
    ("fe80::1%", None),
    ("[81.2.69.142]", None),
    ("[2a02:d0c0::1", None),
    ("[2a02:d0c0::1]:80", None),
    ("81.2.69.142:80", None),
    ("01.2.3.4", None),
    ("0x51.2.69.142", None),
    (" 81.2.69.142", None),
    ("fe80::1%" + "e" * 500, None),
]


@pytest.mark.parametrize(("peer", "text"), PEERS)
def test_parse_peer(peer: str | None, text: str | None) -> None:
    ip = parse_peer(peer)
    assert (ip.text if ip else None) == text


# -- special ranges ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cidr", "why"), PRIVATE_TABLE)
def test_private_table_edges(cidr: str, why: str) -> None:
    network = ipaddress.ip_network(cidr)
    for address in (network.network_address, network.broadcast_address):
        ip = parse_ip(str(address))
        assert ip is not None and is_private(ip), (address, why)
    for outside in (int(network.network_address) - 1, int(network.broadcast_address) + 1):
        ip = parse_ip(
            str(
                ipaddress.ip_address(outside)
                if network.version == 4
                else ipaddress.IPv6Address(outside)
            )
        )
        assert ip is not None and not is_private(ip), outside


@pytest.mark.parametrize(
    ("token", "private"),
    [
        ("81.2.69.142", False),
        ("8.8.8.8", False),
        ("2a02:d0c0::1", False),
        ("100.63.255.255", False),
        ("100.64.0.1", True),
        ("100.127.255.255", True),
        ("100.128.0.0", False),
        ("172.15.255.255", False),
        ("172.31.255.255", True),
        ("::ffff:192.168.1.1", True),  # embedded forms classified as IPv4
        ("2002:c0a8:101::1", True),
        ("64:ff9b::10.1.2.3", True),
        ("3fff:fff:ffff::1", True),
        ("3fff:1000::1", False),
        ("fdff::1", True),
        ("fe00::1", False),
        ("febf::1", True),
        ("fec0::1", False),
        ("::2", False),
        ("0.0.0.1", False),
        ("192.0.0.1", False),  # not in the table on purpose
        ("198.18.0.1", False),
    ],
)
def test_is_private(token: str, private: bool) -> None:
    ip = parse_ip(token)
    assert ip is not None and is_private(ip) is private


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("224.0.0.1", "multicast"),
        ("239.255.255.255", "multicast"),
        ("223.255.255.255", None),
        ("240.0.0.1", None),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("255.255.255.254", None),
        ("ff02::1", "multicast"),
        ("ff00::", "multicast"),
        ("feff::1", None),
        ("::", "unspecified"),
        ("::1", None),
        ("::2", "IPv4-compatible"),
        ("::1.2.3.4", "IPv4-compatible"),
        ("::ffff:ffff", "IPv4-compatible"),
        ("::1:0:0", None),
        ("::ffff:224.0.0.1", "multicast"),  # embedded forms classified as IPv4
        ("::ffff:0.0.0.0", "unspecified"),
        ("2002:ffff:ffff::", "broadcast"),
        ("81.2.69.142", None),
    ],
)
def test_unusable_reason(token: str, reason: str | None) -> None:
    ip = parse_ip(token)
    assert ip is not None and unusable_reason(ip) == reason


# -- NetworkSet --------------------------------------------------------------------------------


def _random_networks(rng: random.Random, lengths: list[int], version: int) -> list[object]:
    bits = 32 if version == 4 else 128
    out = []
    for _ in range(rng.randint(1, 12)):
        length = rng.choice(lengths)
        value = rng.getrandbits(bits) >> (bits - length) << (bits - length) if length else 0
        network_type = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        out.append(network_type((value, length)))
    return out


@pytest.mark.parametrize("distinct_lengths", [1, 3, 12])  # set lookups and bisection
def test_network_set_agrees_with_ipaddress(distinct_lengths: int) -> None:
    rng = random.Random(distinct_lengths)
    for _ in range(40):
        lengths4 = rng.sample(range(1, 33), distinct_lengths)
        lengths6 = rng.sample(range(1, 129), distinct_lengths)
        networks = _random_networks(rng, lengths4, 4) + _random_networks(rng, lengths6, 6)
        # Keep the IPv6 side clear of the ranges that parse as IPv4.
        networks = [n for n in networks if n.version == 4 or not _overlaps_embedded(n)]
        members = NetworkSet(networks)  # type: ignore[arg-type]
        probes: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for network in networks:
            base, top = int(network.network_address), int(network.broadcast_address)
            limit = 2**32 if network.version == 4 else 2**128
            make = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
            probes |= {
                make(v)
                for v in (base, top, base - 1, top + 1, rng.randint(base, top))
                if 0 <= v < limit
            }
        for address in probes:
            ip = parse_ip(str(address))
            if ip is None or ip.version != address.version:
                continue  # an IPv6 probe that lands in an embedding range
            expected = any(address in n for n in networks if n.version == address.version)
            assert (ip in members) is expected, (address, networks)


def _overlaps_embedded(network: ipaddress.IPv6Network) -> bool:
    return any(
        network.overlaps(ipaddress.ip_network(cidr))
        for cidr in ("::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "2001::/32")
    )


def test_network_set_reads_mapped_and_nat64_networks_as_ipv4() -> None:
    members = NetworkSet(
        [
            ipaddress.IPv6Network("::ffff:10.0.0.0/104"),
            ipaddress.IPv6Network("64:ff9b::c000:200/120"),
            ipaddress.IPv6Network("2002:cb00:7100::/40"),
        ]
    )
    for inside in ("10.1.2.3", "::ffff:10.1.2.3", "192.0.2.7", "203.0.113.9", "2002:a01:203::"):
        ip = parse_ip(inside)
        assert ip is not None and ip in members, inside
    for outside in ("11.0.0.0", "192.0.3.1", "203.0.114.1", "2a02:d0c0::1"):
        ip = parse_ip(outside)
        assert ip is not None and ip not in members, outside


def test_network_set_edges() -> None:
    empty = NetworkSet([])
    assert not empty
    assert parse_ip("1.2.3.4") not in empty
    only_v6 = NetworkSet([ipaddress.IPv6Network("2a02:d0c0::/32")])
    assert only_v6
    assert parse_ip("1.2.3.4") not in only_v6
    assert parse_ip("2a02:d0c0::1") in only_v6
    assert "2a02:d0c0::1" not in only_v6  # only parsed addresses are members
    assert None not in only_v6
    single = NetworkSet([ipaddress.IPv4Network("81.2.69.142/32")])
    assert parse_ip("81.2.69.142") in single
    assert parse_ip("81.2.69.143") not in single


# -- the cache stays bounded -------------------------------------------------------------------


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addresses._cache, "limit", 100)
    addresses._cache.clear()
    for n in range(1000):
        assert parse_ip(f"10.0.{n // 256}.{n % 256}") is not None
        assert parse_ip(f"junk{n}") is None
        assert len(addresses._cache) <= 100
    parse_ip("x" * 10_000)
    assert all(len(key) <= 45 for key in addresses._cache)
