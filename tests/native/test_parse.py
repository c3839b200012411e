"""geofence.hotpath._native.parse: the strict fast path for address text that is already canonical.

The rule it must keep: ``parse(t)`` is ``(version, value)`` exactly when the Python parser reads
``t`` as that address and writes it back as ``t`` itself (a canonical dotted quad, or RFC 5952
IPv6 text of an address that carries no IPv4 client); otherwise None, which means "ask the
Python parser", never "invalid". Checked on hand-picked cases and on seeded fuzz.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable

import pytest

from geofence.clientip._addresses import IP, parse_ip, parse_ip_uncached
from geofence.hotpath import NATIVE

pytestmark = pytest.mark.skipif(
    NATIVE is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON): "
    "parse() is the compiled fast path only",
)


def _parse(text: object) -> tuple[int, int] | None:
    assert NATIVE is not None
    result: tuple[int, int] | None = NATIVE.parse(text)
    return result


def _python_agrees(text: str) -> None:
    """The rule above, both ways, for one input."""
    ip = parse_ip_uncached(text)
    expected = None if ip is None or ip.text != text else (ip.version, ip.value)
    assert _parse(text) == expected, text


ACCEPTED_V4 = {
    "0.0.0.0": 0,
    "1.2.3.4": 0x01020304,
    "10.0.0.1": 0x0A000001,
    "255.255.255.255": 0xFFFFFFFF,
    "192.168.100.200": 0xC0A864C8,
    "100.64.0.9": 0x64400009,
    "9.99.199.249": 0x0963C7F9,
}


@pytest.mark.parametrize(("text", "value"), ACCEPTED_V4.items())
def test_canonical_dotted_quads(text: str, value: int) -> None:
    assert _parse(text) == (4, value)
    assert parse_ip(text) == IP(text, 4, value)


REFUSED_V4 = [
    "",
    "01.2.3.4",
    "1.2.3.04",
    "00.0.0.0",
    "1.2.3.00",
    "256.1.1.1",
    "1.2.3.256",
    "1.2.3.999",
    "1000.1.1.1",
    "1..3.4",
    ".1.2.3",
    "1.2.3.",
    "1.2.3",
    "1.2",
    "1",
    "1.2.3.4.5",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2 .3.4",
    "+1.2.3.4",
    "-1.2.3.4",
    "1.2.3.4:80",
    "1.2.3.4/32",
    "0x1.2.3.4",
    "1.2.3.4\n",
    "1.2.3.4\x00",
    "١.٢.٣.٤",  # Arabic-Indic digits: int() reads them, an address must not
    "１.２.３.４",  # full-width digits
    "1.2.3.4\u00e9",
    "1.2.3.4\u200b",
    "\ufeff1.2.3.4",
    "1.2.3.4.",
    "1,2,3,4",
    "a.b.c.d",
]


@pytest.mark.parametrize("text", REFUSED_V4)
def test_not_a_canonical_dotted_quad(text: str) -> None:
    assert _parse(text) is None
    _python_agrees(text)


def _v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


ACCEPTED_V6 = [
    "::",
    "::1",
    "::2",
    "1::",
    "2001:db8::1",
    "fe80::1",
    "fe80::1:2",
    "::102:304",  # IPv4-compatible (deprecated): not an address geofence maps to IPv4
    "::fffe:0:0",  # next to ::ffff:0:0/96, not in it
    "::1:ffff:0:0",
    "64:ff9b:1::1",  # 64:ff9b:1::/48 (local-use NAT64) is not the /96
    "64:ff9b::1:0:0:1",  # in neither: the /96 needs groups 2-5 zero
    "2001:1::1",  # not Teredo: that is 2001:0::/32
    "2003::1",
    "2001:db8:0:1:1:1:1:1",  # one zero group stays "0"
    "1:2:3:4:5:6:7:8",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db8::1:0:0:1",  # equal runs: the first is compressed
    "1:0:0:2::3",  # the longer run is compressed
    "1:0:0:1::",
    "a:b:c:d:e:f:0:1",
    "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
    "0:1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:0",
    # eight groups (the common client text, read on its own path): every group length,
    # single zero groups anywhere, zeros at the seam of the two 64-bit halves
    "2a0b:bf40:45b1:f117:b764:80be:fa19:9721",
    "2a0b:b682:6f21:2c0:cfe7:215f:9ef0:493c",
    "1:22:333:4444:5:66:777:8888",
    "8888:777:66:5:4444:333:22:1",
    "0:1:0:1:0:1:0:1",
    "1:0:1:0:1:0:1:0",
    "1:2:3:0:5:6:7:8",
    "1:2:3:4:0:6:7:8",
    "2001:1:0:1:0:1:0:1",  # not Teredo (2001:0::/32)
    "2003:0:1:0:1:0:1:0",
    "fe80:1:2:3:4:5:6:7",
]


@pytest.mark.parametrize("text", ACCEPTED_V6)
def test_rfc_5952_text(text: str) -> None:
    ip = parse_ip(text)
    if ip is None or ip.text != text:
        # The list above is meant to be canonical; a wrong entry must not pass silently.
        pytest.fail(f"{text!r} is not canonical for the Python parser: {ip}")
    assert _parse(text) == (6, _v6(text))
    assert ip == IP(text, 6, _v6(text))


REFUSED_V6 = [
    # other valid spellings of addresses the fast path would accept canonically
    "2001:DB8::1",
    "2001:Db8::1",
    "FE80::1",
    "2001:0db8::1",
    "02001:db8::1",
    "0::1",
    "::0:1",
    "0:0::1",
    "1::0",
    "0::",
    "::0",
    "0:0:0:0:0:0:0:0",
    "0:0:0:0:0:0:0:1",
    "2001:db8:0:0:1:0:0:1",  # a run of >= 2 zeros must be compressed
    "2001:db8:0:0:0:0:0:1",
    "1::2:0:0:0:3",  # not the longest run
    "1:0:0:2:0:0:0:3",
    "2001:db8:0:0:1::1",  # equal runs of 2: the first must be compressed
    "1:2:3:4:5:6::7",  # "::" for a single zero group (RFC 5952 writes "0")
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1::3:4:5:6:7:8",
    # embedded IPv4 (geofence reads the IPv4 client)
    "::ffff:0:0",
    "::ffff:102:304",
    "::ffff:1.2.3.4",
    "::ffff:ffff:ffff",
    "64:ff9b::102:304",
    "64:ff9b::",
    "2002::",
    "2002:102:304::1",
    "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001::",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # dotted tails, zones, brackets, ports, prefixes
    "::1.2.3.4",
    "::102:1.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "fe80::1%eth0",
    "fe80::1%1",
    "[::1]",
    "[::1]:80",
    "::1/128",
    # not IPv6 at all
    ":",
    ":::",
    "::::",
    "1:::2",
    ":::1",
    "1:::",
    ":1::",
    "::1:",
    ":1",
    "1:",
    "1::2::3",
    "::1::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    # eight groups that are not canonical, or not an address (the eight-group path)
    "1:2:3:0:0:6:7:8",  # two zeros side by side, across the halves' seam
    "1:2:0:0:5:6:7:8",
    "1:2:3:4:5:6:0:0",
    "0:0:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:08",
    "1:2:3:4:5:6:7:00",
    "01:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:88888",
    "11111:2:3:4:5:6:7:8",
    "1:2:3:44444:5:6:7:8",
    "1:2:3:4:5:6:7:8:",
    ":1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:",
    "1:2:3:4:5:6:7:8\x00",
    "1:2:3:4:5:6:7:8\x001",
    "1:2:3:4\x00:5:6:7:8",
    "1:2:3:4:5:6:7:g",
    "1:2:3:4:5:6:7:F",
    "1:2:3:4:5:6:7:8 ",
    "1:2:3:4:5:6:7.8",
    "1:2:3:4;5:6:7:8",
    "2002:c000:204:1:2:3:4:5",  # 6to4 and Teredo in eight groups: an IPv4 client
    "2001:0:4136:e378:8000:63bf:3fff:1",
    "::1:2:3:4:5:6:7:8",
    "12345::",
    "g::",
    "::g",
    " ::1",
    "::1 ",
    "::1\n",
    "::１",
    "::\u0661",
    "fe80::1\x00",
    "1.2.3.4::",
    "-::1",
]


@pytest.mark.parametrize("text", REFUSED_V6)
def test_other_spellings_go_to_the_python_parser(text: str) -> None:
    assert _parse(text) is None
    _python_agrees(text)


def test_length_limit() -> None:
    longest_v4 = "255.255.255.255"
    assert _parse(longest_v4) is not None
    forty_five = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
    assert len(forty_five) == 45
    assert _parse(forty_five) is None  # a dotted tail: valid, but the Python path's
    assert parse_ip(forty_five) is not None
    for n in (45, 46, 47, 100, 10_000):
        for filler in ("1", ":", "f", "1:"):
            text = (filler * n)[:n]
            assert _parse(text) is None
            _python_agrees(text)
    assert _parse("1.2.3.4" + " " * 39) is None  # 46 characters


@pytest.mark.parametrize(
    "value",
    [None, 1, 1.5, b"1.2.3.4", bytearray(b"::1"), memoryview(b"1.2.3.4"), ["1.2.3.4"], object()],
    ids=repr,
)
def test_not_a_str(value: object) -> None:
    assert _parse(value) is None


def test_a_str_subclass_goes_to_the_python_parser() -> None:
    class Token(str):
        __slots__ = ()

    assert _parse(Token("1.2.3.4")) is None
    assert _parse(Token("::1")) is None


def test_wrong_argument_count() -> None:
    assert NATIVE is not None
    with pytest.raises(TypeError):
        NATIVE.parse()
    with pytest.raises(TypeError):
        NATIVE.parse("1.2.3.4", "5")


# -- seeded fuzz ---------------------------------------------------------------------------

ALPHABET = "0123456789abcdefABCDEF:.:.:" + "%[]x- /\u0661\uff11"


def test_fuzz_random_strings() -> None:
    rng = random.Random(20261203)
    pieces = [*ALPHABET, "::", "0", "00", "255", "256", "ffff", "0:0", "1.2.3.4"]
    for _ in range(100_000):
        if rng.random() < 0.5:
            text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 47)))
        else:
            text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 16)))
        _python_agrees(text)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _spellings(rng: random.Random, address: Address) -> list[str]:
    """Many valid (and some invalid) ways to write one address."""
    if address.version == 4:
        octets = [int(o) for o in str(address).split(".")]
        return [
            str(address),
            ".".join(f"{o:03d}" for o in octets),
            ".".join(f"{o:02d}" for o in octets),
            str(address) + ".",
            f"::ffff:{address}",
            f"::ffff:{int(address) >> 16:x}:{int(address) & 0xFFFF:x}",
            f"64:ff9b::{address}",
        ]
    groups = [f"{int.from_bytes(address.packed[i : i + 2], 'big'):x}" for i in range(0, 16, 2)]
    full = ":".join(groups)
    texts = [
        address.compressed,
        address.exploded,
        address.compressed.upper(),
        full,
        ":".join(g.zfill(rng.choice((1, 2, 4))) for g in groups),
        f"[{address.compressed}]",
        f"{address.compressed}%eth0",
    ]
    # Every place a run of zero groups could be compressed, longest or not.
    for start in range(8):
        for end in range(start + 1, 9):
            if all(g == "0" for g in groups[start:end]):
                texts.append(":".join(groups[:start]) + "::" + ":".join(groups[end:]))
    if address.packed[:12] == bytes(12) or address.ipv4_mapped is not None:
        texts.append(f"{':'.join(groups[:6])}:{ipaddress.IPv4Address(address.packed[12:])}")
    return texts


def _random_v6(rng: random.Random) -> ipaddress.IPv6Address:
    """Addresses with zero runs in varied places (uniform ones almost never have any)."""
    groups = [rng.getrandbits(16) if rng.random() < 0.5 else 0 for _ in range(8)]
    for g in range(8):
        if rng.random() < 0.15:
            groups[g] = rng.choice((1, 0xF, 0x10, 0xFF, 0x100, 0xFFF, 0x1000, 0xFFFF))
    kind = rng.random()
    if kind < 0.05:
        groups[:6] = [0, 0, 0, 0, 0, 0xFFFF]  # mapped
    elif kind < 0.1:
        groups[:6] = [0x64, 0xFF9B, 0, 0, 0, 0]  # NAT64
    elif kind < 0.15:
        groups[0] = 0x2002  # 6to4
    elif kind < 0.2:
        groups[:2] = [0x2001, 0]  # Teredo
    elif kind < 0.25:
        groups[:6] = [0] * 6  # IPv4-compatible
    value = 0
    for group in groups:
        value = value << 16 | group
    return ipaddress.IPv6Address(value)


def test_fuzz_addresses_in_many_spellings() -> None:
    rng = random.Random(5952)
    accepted = 0
    for n in range(20_000):
        address: Address = _random_v6(rng)
        if n % 3 == 0:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
        for text in _spellings(rng, address):
            _python_agrees(text)
        # The canonical text the Python parser writes is always the fast path's.
        ip = parse_ip_uncached(str(address))
        assert ip is not None
        if ip.version == address.version:  # not an embedded IPv4 client
            assert _parse(ip.text) == (ip.version, ip.value) == (address.version, int(address))
            accepted += 1
    assert accepted > 10_000


def test_fuzz_random_canonical_texts_are_accepted() -> None:
    rng = random.Random(4291)
    makers: list[Callable[[], int]] = [
        lambda: rng.getrandbits(128),
        lambda: rng.getrandbits(64) << 64,
        lambda: rng.getrandbits(16) << rng.randrange(0, 128, 16),
        lambda: rng.getrandbits(128) & rng.getrandbits(128) & rng.getrandbits(128),
    ]
    for _ in range(20_000):
        value = rng.choice(makers)()
        ip = parse_ip_uncached(str(ipaddress.IPv6Address(value)))
        assert ip is not None
        if ip.version == 6:
            assert _parse(ip.text) == (6, value)
        else:
            assert _parse(ipaddress.IPv6Address(value).compressed) is None
            assert _parse(ip.text) == (4, ip.value)


def test_letters_are_lower_case_hex_only() -> None:
    for letter in string.ascii_letters:
        text = f"2001:db8::{letter}"
        expected = (6, _v6(text)) if letter in "abcdef" else None
        assert _parse(text) == expected
