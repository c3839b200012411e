"""Strict IP address parsing, canonical forms and the special-range table.

Every address that reaches a rule, an exemption or a database goes through :func:`parse_ip`
first. It accepts exactly the RFC 4291 / dotted-quad text forms and nothing else: C resolvers
(and the MaxMind C reader) happily read ``0x51.2.69.142``, ``1357411470`` or ``01.2.3.4``, and
``int()`` reads Arabic-Indic digits, so two pieces of software could otherwise disagree about
which address a request came from.

IPv6 addresses that carry an IPv4 client (IPv4-mapped, 6to4, NAT64, Teredo) come back as that
IPv4 address, so trust, exemptions, rules and lookups can neither be bypassed nor widened by
spelling an IPv4 client as IPv6.

Speed: parsing sits on the per-request path. Results are kept in a bounded cache keyed by the
raw token (a repeated client costs one dict lookup); a miss costs one regular expression match
plus C conversions (canonical IPv6 text: C conversions only), never :mod:`ipaddress`.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterable
from functools import partial
from ipaddress import IPv4Network, IPv6Network
from typing import NamedTuple

from geofence._cache import BoundedCache
from geofence.hotpath import NATIVE, new_tuple

# Spelled here rather than imported from geofence.config, which imports this package (the
# forwarding-header table); geofence.config.Network is the same union.
Network = IPv4Network | IPv6Network


class IP(NamedTuple):
    """A parsed address. Embedded IPv4 forms (mapped, 6to4, NAT64, Teredo) are already IPv4.

    A named tuple rather than a dataclass because it is built on every new client and a
    frozen dataclass costs three times as much to construct.
    """

    text: str  # canonical text, what Decision.client_ip shows and lookups use
    version: int  # 4 or 6
    value: int  # the address as an integer


_new = new_tuple  # skips NamedTuple's Python-level __new__ on the hot path

# The longest valid token: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (45 characters).
_MAX_TOKEN = 45
# A zone id longer than this is not an interface name (RFC 6874 gives no limit; IFNAMSIZ is 16).
_MAX_ZONE = 64

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Character classes are spelled out: \d would accept non-ASCII digits.
_V4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
# Hex groups with at most one "::"; group counts are checked separately.
_V6_SHAPE = re.compile(
    r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?:::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?)?"
)
# Longest first: RFC 5952 compresses the first of the longest runs.
_ZERO_RUNS = tuple(":0" * n + ":" for n in range(8, 1, -1))


def _bind_socket() -> None:
    """Bind ``_inet_aton`` and ``_inet_pton`` to ``_socket``'s, the C module socket.py
    re-exports them from (socket.py itself would load selectors, select and array, ~0.3 MB
    resident, for nothing). Not at import: the compiled build reads canonical addresses
    itself, so a process that never sees any other may never load ``_socket`` (0.15 to 0.3
    MB resident)."""
    global _inet_aton, _inet_pton  # noqa: PLW0603 - bound once, on first use
    from _socket import AF_INET6, inet_aton, inet_pton

    _inet_aton = inet_aton
    _inet_pton = partial(inet_pton, AF_INET6)


def _first_inet_aton(token: str) -> bytes:
    _bind_socket()
    return _inet_aton(token)


def _first_inet_pton(token: str) -> bytes:
    _bind_socket()
    return _inet_pton(token)


_inet_aton: Callable[[str], bytes] = _first_inet_aton
_inet_pton: Callable[[str], bytes] = _first_inet_pton  # IPv6 text -> 16 bytes
_unpack8 = struct.Struct(">8H").unpack
_from_bytes = int.from_bytes

# geofence.hotpath._native.parse: (version, value) for a canonical dotted quad or RFC 5952 text that
# embeds no IPv4 address, else None ("not handled here", never "invalid").
_native_parse: Callable[[object], tuple[int, int] | None] | None = (
    None if NATIVE is None else NATIVE.parse
)
_canonical: Callable[[object], tuple[int, int] | None] = _native_parse or (lambda _token: None)

_MAPPED = 0xFFFF  # ::ffff:0:0/96, value >> 32
_NAT64 = 0x0064_FF9B_0000_0000_0000_0000  # 64:ff9b::/96, value >> 32
_6TO4 = 0x2002  # 2002::/16, value >> 112
_TEREDO = 0x2001_0000  # 2001::/32, value >> 96


def _v4_value(token: str) -> int | None:
    if _V4.fullmatch(token) is None:
        return None
    # Only canonical dotted quads get here, which inet_aton reads the same on every platform.
    return _from_bytes(_inet_aton(token), "big")


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def _v6_value(token: str) -> bytes | None:
    """RFC 4291 section 2.2 text forms, as 16 bytes; ``None`` for anything else."""
    shape = token
    if "." in token:
        # Form 3, x:x:x:x:x:x:d.d.d.d: the tail must be a strict dotted quad.
        cut = token.rfind(":")
        if _V4.fullmatch(token, cut + 1) is None:
            return None
        shape = token[: cut + 1] + "0:0"
    if _V6_SHAPE.fullmatch(shape) is None:
        return None
    colons = shape.count(":")
    if "::" in shape:
        # "::" stands for at least one group, so at most seven are written out.
        edge = shape[:2] == "::" or shape[-2:] == "::"
        if colons - edge > 7:
            return None
    elif colons != 7:
        return None
    # The text is a valid RFC 4291 form by now, which every inet_pton reads the same way;
    # should one still refuse it, the address is refused.
    try:
        return _inet_pton(token)
    except (OSError, ValueError):
        return None


def _v6_text(packed: bytes) -> str:
    """RFC 5952 text: lower case, no leading zeros, the first longest run of >= 2 zeros as ::."""
    text = ":%x:%x:%x:%x:%x:%x:%x:%x:" % _unpack8(packed)  # noqa: UP031 - one C call
    if ":0:0:" in text:
        for run in _ZERO_RUNS:
            at = text.find(run)
            if at >= 0:
                return f"{text[1:at]}::{text[at + len(run) : -1]}"
    return text[1:-1]


def _embedded_v4(value: int) -> int | None:
    """The IPv4 client carried by an IPv6 address, if it carries one."""
    high = value >> 32
    if high in (_MAPPED, _NAT64):
        return value & 0xFFFFFFFF
    if value >> 112 == _6TO4:
        return value >> 80 & 0xFFFFFFFF
    if value >> 96 == _TEREDO:
        # RFC 4380 section 4: the client's public address is stored with every bit inverted.
        return ~value & 0xFFFFFFFF
    return None


def _parse_text(token: str) -> IP | None:
    if ":" not in token:
        v4 = _v4_value(token)
        return None if v4 is None else _new(IP, (token, 4, v4))
    packed = _v6_value(token)
    if packed is None:
        return None
    value = _from_bytes(packed, "big")
    v4 = _embedded_v4(value)
    if v4 is not None:
        return _new(IP, (_v4_text(v4), 4, v4))
    return _new(IP, (_v6_text(packed), 6, value))


def _parse_canonical_first(token: str) -> IP | None:
    # Text already in canonical form (nearly every peer and header entry) is read by the
    # extension in one call; any other spelling, valid or not, by the Python path.
    known = _canonical(token)
    if known is None:
        return _parse_text(token)
    return _new(IP, (token, known[0], known[1]))


# IPv6 forms that carry an IPv4 client (see _embedded_v4), by their first 16 bits: mapped and
# NAT64 (0 and 0x64), 6to4, and the Teredo prefix's 2001 (with many others under it).
_EMBEDDING_HEADS = frozenset((0, _NAT64 >> 80, _6TO4, _TEREDO >> 16))


def _parse_written_back(token: str) -> IP | None:
    # Without the extension, IPv6 text is read by inet_pton and the address written back
    # canonically: the same text means a canonical, hence valid, address whatever else
    # inet_pton accepts, and costs a third less than the strict path's regular expression
    # on the usual 30-39 characters. Any other spelling takes the strict path. (Not for IPv4:
    # writing a dotted quad back costs more than its regular expression.)
    if ":" not in token:
        v4 = _v4_value(token)
        return None if v4 is None else _new(IP, (token, 4, v4))
    if "." in token:
        # A dotted tail (::ffff:a.b.c.d, the peer of every IPv4 client on a dual-stack
        # socket) is never written back that way: straight to the strict path.
        return _parse_text(token)
    try:
        packed = _inet_pton(token)
    except (OSError, ValueError):  # not an address to it, or a NUL, or a lone surrogate
        return None  # the strict path ends with inet_pton too: it would refuse it as well
    value = _from_bytes(packed, "big")
    if value >> 112 not in _EMBEDDING_HEADS and (
        # Eight groups of four digits, none led by a zero (so no zero group to compress):
        # canonical if lower case, which is the bytes' hex form. Else the full write-back.
        (len(token) == 39 and token[0] != "0" and ":0" not in token and packed.hex(":", 2) == token)
        or _v6_text(packed) == token
    ):
        return _new(IP, (token, 6, value))
    return _parse_text(token)


_parse: Callable[[str], IP | None] = (
    _parse_written_back if _native_parse is None else _parse_canonical_first
)


# Bounded: when full it is emptied, which costs one burst of misses and keeps memory fixed
# however many distinct (or junk) tokens arrive. Only tokens short enough to be addresses are
# stored, so the keys are small too. dict operations are atomic, so threads can share it.
CACHE_SIZE = 16384
_cache: BoundedCache[str, IP | None] = BoundedCache(CACHE_SIZE)
# Read through the bound method: CPython 3.11+ specializes ``cache.get(key)`` only on an exact
# dict, so on this dict subclass the bound ``get`` is the fast way (a dict's own speed).
_cached = _cache.get
_MISS = IP("", 0, -1)


def parse_ip(text: str) -> IP | None:
    """Parse one address token strictly; ``None`` for anything malformed.

    Accepted: a dotted quad without leading zeros, or an RFC 4291 IPv6 text form (either case,
    ``::``, a strict dotted-quad tail). Refused: whitespace, brackets, ports, zone ids, octal,
    hex and integer IPv4 forms, short forms like ``1.2.3``, non-ASCII digits.
    """
    ip = _cached(text, _MISS)
    if ip is not _MISS:
        return ip
    if not isinstance(text, str) or len(text) > _MAX_TOKEN:
        return None
    return _cache.put(text, _parse(text))


def parse_ip_uncached(text: str) -> IP | None:
    """:func:`parse_ip` without its cache, for a caller that remembers its own answers.

    The resolver does (per list element, per resolver), so a second cache under it would
    only cost a miss and a store for every new client.
    """
    if not isinstance(text, str) or len(text) > _MAX_TOKEN:
        return None
    return _parse(text)


def _parse_peer_text(text: str | None) -> IP | None:
    """Parse a socket peer address (a zone id is stripped here, unlike in headers).

    The peer comes from the server, not from the client, so the forms servers use are
    tolerated: ``[2001:db8::1]`` and ``fe80::1%eth0``. Anything else is as strict as
    :func:`parse_ip`; ``None`` (e.g. a Unix socket) gives ``None``.
    """
    # Not through parse_ip's cache: the engine keeps its decisions per peer (and the resolver
    # its trusted proxies), so a second cache would only cost a miss and a store.
    if not isinstance(text, str) or len(text) > _MAX_TOKEN + _MAX_ZONE + 3:
        return None
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
        if ":" not in text:  # brackets belong to IPv6 only
            return None
    zone = text.find("%")
    if zone >= 0:
        if ":" not in text or zone == len(text) - 1:
            return None
        text = text[:zone]
    if len(text) > _MAX_TOKEN:
        return None
    return _parse(text)


# A server hands over the peer in canonical form nearly always: with the extension, one C call
# that makes the IP (geofence.hotpath._native.Peers), the Python parser for anything else.
parse_peer: Callable[[str | None], IP | None] = (
    _parse_peer_text if NATIVE is None else NATIVE.Peers(IP, _parse_peer_text)
)


# -- network membership ------------------------------------------------------------------------

# Leading bits of an address (by the family's width) indexing _Family.heads: 256 and 65,536 bytes.
HEAD_BITS = {32: 8, 128: 16}
# With this many distinct prefix lengths or fewer, one set lookup per length beats a bisection.
_SET_LENGTHS = 3


class _Family:
    """Membership for one address family: per-prefix-length sets, or merged sorted ranges."""

    __slots__ = ("by_length", "ends", "heads", "starts")

    def __init__(self, bits: int, networks: list[tuple[int, int]]) -> None:
        # 1 for each value of an address's first HEAD_BITS bits under which some network
        # lies: nearly every address is told "not in the set" by one index into this.
        head = HEAD_BITS[bits]
        heads = bytearray(1 << head)
        for start, length in networks:
            first = start >> (bits - head)
            span = 1 << max(0, head - length)
            heads[first : first + span] = b"\x01" * span
        self.heads = bytes(heads)
        lengths = sorted({length for _, length in networks})
        self.by_length: tuple[tuple[int, frozenset[int]], ...] | None = None
        self.starts: list[int] = []
        self.ends: list[int] = []
        if len(lengths) <= _SET_LENGTHS:
            self.by_length = tuple(
                (
                    bits - length,
                    frozenset(start >> (bits - length) for start, n in networks if n == length),
                )
                for length in lengths
            )
            return
        ranges = sorted((start, start + (1 << (bits - length)) - 1) for start, length in networks)
        for start, end in ranges:
            if self.ends and start <= self.ends[-1] + 1:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def holds(self, value: int) -> bool:
        if self.by_length is not None:
            for shift, prefixes in self.by_length:  # noqa: SIM110 - any() is twice as slow
                if value >> shift in prefixes:
                    return True
            return False
        index = bisect_right(self.starts, value) - 1
        return index >= 0 and value <= self.ends[index]

    __contains__ = holds


def _as_v4(network: IPv6Network) -> IPv4Network | None:
    """The IPv4 network an IPv6 network stands for, when it lies inside an embedding range."""
    value, length = int(network.network_address), network.prefixlen
    if length >= 96 and (value >> 32 == _MAPPED or value >> 32 == _NAT64):
        return IPv4Network((value & 0xFFFFFFFF, length - 96))
    if 16 <= length <= 48 and value >> 112 == _6TO4:
        return IPv4Network((value >> 80 & 0xFFFFFFFF, length - 16))
    return None


class NetworkSet:
    """A fixed set of networks with a fast membership test for :class:`IP`.

    IPv6 networks inside the IPv4-mapped or NAT64 ranges (and 6to4 networks of at most /48)
    are stored as the IPv4 network they stand for, matching how :func:`parse_ip` reports
    such addresses. Other IPv6 networks never contain an embedded-IPv4 address, since those
    are IPv4 by the time they are tested.
    """

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable[Network]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for given in networks:
            network = _as_v4(given) if isinstance(given, IPv6Network) else given
            if network is None:
                v6.append((int(given.network_address), given.prefixlen))
            else:
                v4.append((int(network.network_address), network.prefixlen))
        self._v4 = _Family(32, v4) if v4 else None
        self._v6 = _Family(128, v6) if v6 else None

    def holds(self, ip: object) -> bool:
        """``ip in networks``, for hot paths: a method call costs about a third of ``in``,
        which re-enters the interpreter from C for a Python ``__contains__``."""
        if not isinstance(ip, IP):
            return False
        value = ip.value
        if ip.version == 4:
            family = self._v4
            if family is None or not family.heads[value >> 24]:
                return False
        else:
            family = self._v6
            if family is None or not family.heads[value >> 112]:
                return False
        return family.holds(value)

    __contains__ = holds

    def __bool__(self) -> bool:
        return self._v4 is not None or self._v6 is not None

    def heads_and_holds(self) -> tuple[bytes | None, bytes | None, Callable[[object], bool]]:
        """The heads tables of the IPv4 and IPv6 networks (None: no network of that version)
        and :meth:`holds`: what geofence/hotpath/_miss.c tests membership with, asking ``holds``
        only for an address whose first bits some network starts with."""
        return (
            None if self._v4 is None else self._v4.heads,
            None if self._v6 is None else self._v6.heads,
            self.holds,
        )


# -- special ranges ----------------------------------------------------------------------------

# Clients that are not on the public Internet, so no database can place them. Written out
# rather than taken from ipaddress.is_private, whose meaning has changed between Python
# versions (3.11.10 / 3.12.4 / 3.13 reclassified several ranges).
PRIVATE_TABLE: tuple[tuple[str, str], ...] = (
    ("10.0.0.0/8", "private network (RFC 1918)"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("100.64.0.0/10", "carrier-grade NAT shared space (RFC 6598)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fc00::/7", "unique local address (RFC 4193)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("3fff::/20", "documentation (RFC 9637)"),
)


def _network(text: str) -> Network:
    return IPv6Network(text) if ":" in text else IPv4Network(text)


_PRIVATE = NetworkSet(_network(cidr) for cidr, _ in PRIVATE_TABLE)
#: :data:`PRIVATE_TABLE` as a :class:`NetworkSet`.
PRIVATE_NETWORKS = _PRIVATE


#: Whether ``ip`` is private, loopback, link-local, CGNAT or documentation (from
#: :data:`PRIVATE_TABLE`). The set's own method rather than a function calling it: this runs
#: for every new client, and a call costs more than the test.
is_private: Callable[[IP], bool] = _PRIVATE.holds


def unusable_reason(ip: IP) -> str | None:
    """Why ``ip`` cannot be a client (multicast, unspecified, broadcast, IPv4-compatible).

    None of these can open a connection, so a header naming one is forged or broken.
    """
    value = ip.value
    if ip.version == 4:
        if value >> 28 == 0xE:  # 224.0.0.0/4
            return "multicast"
        if value == 0:
            return "unspecified"
        if value == 0xFFFFFFFF:
            return "broadcast"
        return None
    if value >> 120 == 0xFF:  # ff00::/8
        return "multicast"
    if value == 0:
        return "unspecified"
    if value >> 32 == 0 and value != 1:
        # ::a.b.c.d, deprecated by RFC 4291 section 2.5.5.1; reading it as IPv4 would let a
        # client pick any IPv4 identity, reading it as IPv6 would dodge IPv4 rules.
        return "IPv4-compatible"
    return None
