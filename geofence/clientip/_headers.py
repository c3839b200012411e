"""The forwarding-header table: every header ``client_ip.header`` may name, one row each.

Everything else derives from this table: the names the configuration accepts (and lists in its
error messages), which headers may only be used with ``hops = 1``, and how the resolver splits
and reads a header's value. Adding a header whose value is spelled like an existing one is one
row here (plus its tests); a new kind of value would also need a parser in ``_resolver.py``.

This module imports nothing from geofence: :mod:`geofence.config` reads it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

#: How one entry of a header is spelled.
#:
#: ``"address"``: an address token (``81.2.69.142``, ``81.2.69.142:4711``, ``[2001:db8::1]:80``,
#: ``"2001:db8::1"``; ports, brackets and quotes are stripped, nothing else is tolerated).
#: ``"forwarded"``: an RFC 7239 forwarded-element (``for=...;proto=https``); the client is its
#: ``for=`` value, quoted-strings may hold commas, ``unknown`` and ``_obfuscated`` identifiers
#: are unresolved.
Syntax = Literal["address", "forwarded"]


class ForwardingHeader(NamedTuple):
    """One row of :data:`FORWARDING_HEADERS`."""

    name: str  # lower-case, as written in client_ip.header
    #: True: a comma-separated chain, one entry per proxy, walked from the right past trusted
    #: entries (or ``hops`` of them). False: one address, set by the proxy next to the app; a
    #: list, or two lines of it, is unresolved, and ``hops`` can only be 1.
    is_list: bool
    syntax: Syntax


FORWARDING_HEADERS: tuple[ForwardingHeader, ...] = (
    ForwardingHeader("x-forwarded-for", True, "address"),  # most proxies and load balancers
    ForwardingHeader("forwarded", True, "forwarded"),  # RFC 7239
    ForwardingHeader("x-real-ip", False, "address"),  # nginx and other reverse proxies
    ForwardingHeader("cf-connecting-ip", False, "address"),  # Cloudflare
    ForwardingHeader("true-client-ip", False, "address"),  # Akamai, Cloudflare Enterprise
    ForwardingHeader("fastly-client-ip", False, "address"),  # Fastly
)

#: The names ``client_ip.header`` accepts, in the table's order (error messages list them).
HEADER_NAMES: tuple[str, ...] = tuple(row.name for row in FORWARDING_HEADERS)
#: The single-valued ones: with ``hops``, only ``hops = 1`` makes sense.
SINGLE_VALUED_HEADERS: tuple[str, ...] = tuple(
    row.name for row in FORWARDING_HEADERS if not row.is_list
)

_BY_NAME = {row.name: row for row in FORWARDING_HEADERS}


def forwarding_header(name: str) -> ForwardingHeader:
    """The row for ``name`` (any case); ``KeyError`` for a header not in the table."""
    return _BY_NAME[name.lower()]


def _check(rows: tuple[ForwardingHeader, ...]) -> None:
    """Refuse a malformed table at import, so a bad row can never reach a request."""
    seen: set[str] = set()
    for row in rows:
        if row.name != row.name.lower() or not row.name or row.name in seen:
            raise ValueError(f"forwarding-header table: bad or repeated name {row.name!r}")
        if row.syntax not in ("address", "forwarded"):
            raise ValueError(f"forwarding-header table: {row.name} has syntax {row.syntax!r}")
        seen.add(row.name)


_check(FORWARDING_HEADERS)
