"""Strict IP address parsing, canonical forms and the special-range table.

OWNER: client-IP helper.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .policy import Network


@dataclass(frozen=True, slots=True)
class IP:
    """A parsed address. Embedded IPv4 forms (mapped, 6to4, NAT64, Teredo) are already IPv4."""

    text: str  # canonical text, what Decision.client_ip shows and lookups use
    version: int  # 4 or 6
    value: int  # the address as an integer


def parse_ip(text: str) -> IP | None:
    """Parse one address token strictly; ``None`` for anything malformed."""
    raise NotImplementedError


def parse_peer(text: str | None) -> IP | None:
    """Parse a socket peer address (a zone id is stripped here, unlike in headers)."""
    raise NotImplementedError


class NetworkSet:
    """A fixed set of networks with a fast membership test for :class:`IP`."""

    def __init__(self, networks: Iterable[Network]) -> None:
        raise NotImplementedError

    def __contains__(self, ip: object) -> bool:
        raise NotImplementedError

    def __bool__(self) -> bool:
        raise NotImplementedError


def is_private(ip: IP) -> bool:
    """Private, loopback, link-local, CGNAT or documentation: from an explicit table."""
    raise NotImplementedError


def unusable_reason(ip: IP) -> str | None:
    """Why ``ip`` cannot be a client (multicast, unspecified, broadcast, IPv4-compatible)."""
    raise NotImplementedError
