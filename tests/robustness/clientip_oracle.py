"""A reference for DESIGN.md's "Client IP" rules, written from the contract alone.

It is deliberately naive: every step is spelled out, addresses go through the stdlib
``ipaddress`` module, nothing is precomputed and speed does not matter. It shares no code with
``geofence.clientip`` / ``geofence.addresses`` so that a bug in one is not copied into the other.

Where DESIGN.md is silent, the choices made here (and why) are:

- ``hops`` trusts by position, not by address: the peer is not checked. The entries right of
  the client are still read ("what lies left of it is never read" implies the right part is),
  so one that is malformed or not a usable address makes the chain malformed: unresolved, as
  the same entry would be in trusted_proxies mode, where it would stop the walk. (A first
  draft of this oracle skipped them; the matrix showed the library's stricter reading, which
  DESIGN.md supports better.)
- A single-valued header (x-real-ip and the CDN headers) containing a comma is a list, even if
  some of its elements are empty: one value per header is its whole grammar.
- Forwarded values follow RFC 7239 syntax: a value that is not a token must be quoted; an
  element without ``for=`` (or with two) cannot name the client, so it is malformed. A line
  whose quotes do not pair up is read from the right as far as they do (the longest suffix
  after a comma that parses); the rest is one malformed element, which only matters if the
  walk reaches it. (A first draft rejected the whole line; the fuzz showed the library's
  reading, which is the one "what lies left of it is never read" asks for: a client cannot
  hide the proxies' own entries behind a stray quote.)
- The socket peer may be bracketed (``[::1]``); its zone id is RFC 6874 text (unreserved
  characters). DESIGN.md says nothing more: the peer comes from the server, not the client.
- A port is 1 to 5 ASCII digits, at most 65535.

The pure helpers are memoized (``functools.cache``) only so that the exhaustive matrix runs in
seconds; the cache changes no answer.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SINGLE_VALUED = frozenset({"x-real-ip", "cf-connecting-ip", "true-client-ip", "fastly-client-ip"})
HEADERS = ("x-forwarded-for", "forwarded", *sorted(SINGLE_VALUED))

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# RFC 9110 token characters, for Forwarded parameter names and unquoted values.
# RFC 3986 unreserved characters: what RFC 6874 allows in a zone id.
ZONE_CHARS = frozenset("-._~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class OraclePolicy:
    trusted_proxies: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"
    hops: int | None = None


# -- addresses ---------------------------------------------------------------------------------


def effective(address: Address) -> Address:
    """The address that counts: the embedded IPv4 of mapped, 6to4, NAT64 and Teredo forms."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is who we are talking to
    return address


def is_ipv4_compatible(address: Address) -> bool:
    # ::/96 minus :: (unspecified) and ::1 (loopback), which have meanings of their own.
    return (
        isinstance(address, ipaddress.IPv6Address)
        and address in IPV4_COMPATIBLE
        and int(address) > 1
    )


@functools.cache
def client_text(address: Address | None) -> str | None:
    """The canonical text of a client address, or None when it cannot be a client."""
    if address is None or is_ipv4_compatible(address):
        return None
    address = effective(address)
    if address.is_multicast or address.is_unspecified or address == BROADCAST:
        return None
    return str(address)


@functools.cache
def is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    address = effective(address)
    return any(network.version == address.version and address in network for network in trusted)


def parse_ip(text: str) -> Address | None:
    """A bare address, strictly: no zone id, no leading zeros, hex or integer forms."""
    if "%" in text:
        return None
    try:
        # ipaddress rejects leading zeros, hex and short IPv4 forms; a str is never an integer.
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_port(text: str) -> bool:
    return 1 <= len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


def parse_node(text: str) -> Address | None:
    """``a.b.c.d``, ``a.b.c.d:port``, ``v6``, ``[v6]`` or ``[v6]:port``; None if malformed."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        rest = text[close + 1 :]
        if rest and not (rest.startswith(":") and is_port(rest[1:])):
            return None
        address = parse_ip(text[1:close])
        return address if isinstance(address, ipaddress.IPv6Address) else None
    if text.count(":") == 1:
        host, port = text.split(":")
        if not is_port(port):
            return None
        address = parse_ip(host)
        return address if isinstance(address, ipaddress.IPv4Address) else None
    return parse_ip(text)


@functools.cache
def parse_peer(peer: object) -> Address | None:
    """The socket peer: a bare address; an IPv6 peer may be bracketed and carry a zone id."""
    if not isinstance(peer, str):
        return None
    bracketed = peer.startswith("[") and peer.endswith("]")
    if bracketed:
        peer = peer[1:-1]
    host, percent, zone = peer.partition("%")
    if percent and not (zone and all(char in ZONE_CHARS for char in zone)):
        return None
    address = parse_ip(host)
    if (bracketed or percent) and not isinstance(address, ipaddress.IPv6Address):
        return None
    return address


# -- headers -----------------------------------------------------------------------------------


@functools.cache
def parse_list_element(element: str) -> Address | None:
    """One element of X-Forwarded-For (or a single-valued header): quotes stripped."""
    if len(element) >= 2 and element[0] == '"' and element[-1] == '"':
        element = element[1:-1]
    return parse_node(element)


def split_quoted(text: str, separator: str) -> list[str] | None:
    """Split on ``separator`` outside quoted strings; None on an unterminated quote."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted or escaped:
        return None
    parts.append("".join(current))
    return parts


def unquote(value: str) -> str | None:
    """An RFC 9110 token or quoted-string, as its content; None if it is neither."""
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            return None
        out: list[str] = []
        body = iter(value[1:-1])
        for char in body:
            if char == '"':
                return None
            if char == "\\":
                escaped = next(body, "")
                if not escaped:
                    return None  # the backslash escaped the closing quote
                out.append(escaped)
            else:
                out.append(char)
        return "".join(out)
    if value and all(char in TCHAR for char in value):
        return value
    return None


def forwarded_elements(line: str) -> list[str | None]:
    """One Forwarded line's elements, left to right (None: the unreadable part, see above)."""
    whole = split_quoted(line, ",")
    if whole is not None:
        return [*whole]
    for comma, char in enumerate(line):
        if char == ",":
            suffix = split_quoted(line[comma + 1 :], ",")
            if suffix is not None:
                return [None, *suffix]
    return [None]


@functools.cache
def parse_forwarded_element(element: str) -> Address | None:
    """The ``for=`` node of one Forwarded element; None when absent, obfuscated or malformed."""
    pairs = split_quoted(element, ";")
    if pairs is None:
        return None
    found: list[str] = []
    for raw_pair in pairs:
        pair = raw_pair.strip(" \t")
        if not pair:
            continue
        name, equals, raw = pair.partition("=")
        if not equals or not name or not all(char in TCHAR for char in name):
            return None
        value = unquote(raw)
        if value is None:
            return None
        if name.lower() == "for":
            found.append(value)
    if len(found) != 1:
        return None
    node = found[0]
    if node.lower() == "unknown" or node.startswith("_"):
        return None
    return parse_node(node)


def header_chain(
    header: str, headers: Sequence[tuple[str, str]]
) -> tuple[Address | None, ...] | None:
    """The header's entries in order (None: malformed entry), or None if the header is unusable.

    Lines are joined in order; empty list elements are skipped. An empty chain means the
    header was not sent (or sent empty).
    """
    return lines_chain(header, tuple(value for name, value in headers if name.lower() == header))


@functools.cache
def lines_chain(header: str, lines: tuple[str, ...]) -> tuple[Address | None, ...] | None:
    if header in SINGLE_VALUED:
        if len(lines) > 1 or (lines and "," in lines[0]):
            return None
        value = lines[0].strip(" \t") if lines else ""
        return (parse_list_element(value),) if value else ()
    chain: list[Address | None] = []
    for line in lines:
        if header != "forwarded":
            for raw_element in line.split(","):
                if element := raw_element.strip(" \t"):
                    chain.append(parse_list_element(element))
            continue
        for raw in forwarded_elements(line):
            if raw is None:
                chain.append(None)
            elif element := raw.strip(" \t"):
                chain.append(parse_forwarded_element(element))
    return tuple(chain)


# -- the rule ----------------------------------------------------------------------------------


def resolve(policy: OraclePolicy, peer: object, headers: Sequence[tuple[str, str]]) -> str | None:
    """The client IP text DESIGN.md prescribes, or None for ``unresolved_client``."""
    if policy.hops is None:
        peer_address = parse_peer(peer)
        if peer_address is None:
            return None
        if not policy.trusted_proxies or not is_trusted(peer_address, policy.trusted_proxies):
            return client_text(peer_address)
    chain = header_chain(policy.header, headers)
    if not chain:
        return None  # unusable header, or a trusted peer that sent none
    if policy.hops is not None:
        if len(chain) < policy.hops:
            return None
        if any(client_text(entry) is None for entry in chain[-policy.hops :]):
            return None
        return client_text(chain[-policy.hops])
    for entry in reversed(chain):
        if entry is not None and is_trusted(entry, policy.trusted_proxies):
            continue
        return client_text(entry)  # the first untrusted entry: nothing left of it is read
    return None  # every entry is trusted
