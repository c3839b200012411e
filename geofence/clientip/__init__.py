"""Who the client is: strict address parsing, the forwarding-header table, the trusted walks.

* :func:`parse_ip` reads one address token strictly (no octal, hex, integer or zone-id forms)
  into an :class:`IP`; IPv4-mapped, 6to4, NAT64 and Teredo addresses come back as their IPv4
  client. :func:`parse_peer` does the same for the socket peer, which may carry brackets and a
  zone id.
* :class:`NetworkSet` is a fast membership test for a fixed set of networks (:data:`Network`
  values); :func:`is_private` and :data:`PRIVATE_TABLE` are the private, loopback,
  link-local, CGNAT and documentation ranges; :func:`unusable_reason` says why an address
  cannot be a client (multicast, unspecified, broadcast, IPv4-compatible).
* :data:`FORWARDING_HEADERS` is the table of headers ``client_ip.header`` may name: one
  :class:`ForwardingHeader` row each (list or single-valued, plain address or RFC 7239
  ``for=``). The configuration and the resolver both read it; a new header is one new row.
* :class:`ClientResolver` turns the socket peer and the request headers into a
  :class:`ClientIP` (the address, or ``None`` for ``unresolved_client``, and how it was found),
  as DESIGN.md "Client IP" says.

This sub-package is internal: geofence's supported API is what ``geofence`` exports.
It imports nothing from :mod:`geofence.config` at run time (the configuration imports the
header table from here).
"""

from geofence.clientip._addresses import (
    IP,
    PRIVATE_TABLE,
    Network,
    NetworkSet,
    is_private,
    parse_ip,
    parse_peer,
    unusable_reason,
)
from geofence.clientip._headers import (
    FORWARDING_HEADERS,
    HEADER_NAMES,
    SINGLE_VALUED_HEADERS,
    ForwardingHeader,
    Syntax,
    forwarding_header,
)
from geofence.clientip._resolver import MAX_HOPS, ClientIP, ClientResolver

__all__ = [
    "FORWARDING_HEADERS",
    "HEADER_NAMES",
    "IP",
    "MAX_HOPS",
    "PRIVATE_TABLE",
    "SINGLE_VALUED_HEADERS",
    "ClientIP",
    "ClientResolver",
    "ForwardingHeader",
    "Network",
    "NetworkSet",
    "Syntax",
    "forwarding_header",
    "is_private",
    "parse_ip",
    "parse_peer",
    "unusable_reason",
]
