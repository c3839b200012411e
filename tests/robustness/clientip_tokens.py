"""Header tokens for the client-IP tests: one per kind of thing a forwarding header can hold.

Each token has its X-Forwarded-For spelling and its RFC 7239 ``Forwarded`` element (quoted
whenever the node is not a plain token). Addresses come from MaxMind's test databases where a
country matters (81.2.69.142 GB, 175.16.199.1 CN, 89.160.20.112 SE, 216.160.83.56 US).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from clientip_oracle import TCHAR

TRUSTED_V4 = ipaddress.IPv4Network("10.0.0.0/8")
TRUSTED_V6 = ipaddress.IPv6Network("2600:1f00::/32")
TRUSTED = (TRUSTED_V4, TRUSTED_V6)


def six_to_four(v4: str, tail: int = 1) -> str:
    return str(
        ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(v4)) << 80) | tail)
    )


def nat64(v4: str) -> str:
    return str(
        ipaddress.IPv6Address(
            int(ipaddress.IPv6Address("64:ff9b::")) | int(ipaddress.IPv4Address(v4))
        )
    )


def teredo(
    client: str, server: str = "65.54.227.120", flags: int = 0x8000, port: int = 40000
) -> str:
    """A Teredo address (RFC 4380): server, flags, then port and client both inverted."""
    value = (
        (0x20010000 << 96)
        | (int(ipaddress.IPv4Address(server)) << 64)
        | (flags << 48)
        | ((port ^ 0xFFFF) << 32)
        | (int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF)
    )
    return str(ipaddress.IPv6Address(value))


def forwarded_element(node: str) -> str:
    """``for=node``, quoted (with escapes) unless the node is a token."""
    if node and all(char in TCHAR for char in node):
        return f"for={node}"
    escaped = node.replace("\\", "\\\\").replace('"', '\\"')
    return f'for="{escaped}"'


@dataclass(frozen=True)
class Token:
    kind: str
    xff: str  # as one X-Forwarded-For / X-Real-IP element
    fwd: str  # as one Forwarded element


def token(kind: str, node: str, fwd: str | None = None) -> Token:
    return Token(kind, node, forwarded_element(node) if fwd is None else fwd)


def token6(kind: str, node: str, params: str = "") -> Token:
    """An IPv6 node: bracketed in Forwarded, as RFC 7239 section 6 requires."""
    return Token(kind, node, f'for="[{node}]"{params}')


# The kinds the exhaustive matrix combines (1 to 3 of them per chain).
TOKENS: tuple[Token, ...] = (
    token("global_v4", "81.2.69.142"),
    token6("global_v6", "2a02:d0c0::1"),
    token("trusted_v4", "10.0.0.5"),
    Token("trusted_v6", "2600:1f00::5", 'For="[2600:1f00::5]"'),  # parameter names: any case
    token("trusted_v4_port", "10.0.0.6:443"),
    token6("trusted_6to4", six_to_four("10.0.0.8")),
    token("private", "192.168.1.5"),
    token6("loopback_v6", "::1"),
    token("link_local", "169.254.1.1"),
    token("cgnat", "100.64.0.1"),
    token6("documentation_v6", "2001:db8::7", ";proto=https"),
    token("multicast", "224.0.0.1"),
    token6("unspecified_v6", "::"),
    token("broadcast", "255.255.255.255"),
    token6("mapped", "::ffff:175.16.199.1"),
    token6("mapped_trusted", "::ffff:10.0.0.7"),
    token6("ipv4_compatible", "::81.2.69.142"),
    token6("6to4", six_to_four("89.160.20.112")),
    token6("teredo", teredo("216.160.83.56")),
    token6("nat64", nat64("175.16.199.1")),
    token("garbage", "not-an-ip"),
    token("unknown", "unknown"),
    token("obfuscated", "_hidden"),
    token("v4_port", "89.160.20.112:8080"),
    token("v6_bracket_port", "[2a02:d2c0::1]:443"),
    token("quoted", '"216.160.83.56"', 'for="216.160.83.56"'),
    token6("zone_id", "fe80::1%eth0"),
    token("leading_zeros", "081.002.069.142"),
    token("hex", "0x51.0x2.0x45.0x8e"),
    token("integer", "1359103374"),
    Token("empty", "", ""),
)
