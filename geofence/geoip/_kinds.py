"""What each ``geoip.*_db`` setting accepts (:class:`Kind`), the per-database cache size and
what tells a replaced file (:func:`signature`).

Apart from :mod:`geofence.geoip._mmdb` (the MaxMind file wrapper, which re-exports them) so
that an engine on the embedded database does not load the wrapper to name its kinds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from geofence._record import record
from geofence.geoip._records import RecordDecoder

T = TypeVar("T")

# Answers kept per database, by address for lookup() and by data record for find() (each a
# BoundedCache: emptied when full, which bounds memory whatever the traffic).
CACHE_SIZE = 65_536


@record(frozen=True)
class Kind(Generic[T]):
    """What one setting accepts: which database types, and how records become answers."""

    key: str  # "geoip.country_db"
    wants: str  # completes "geoip.country_db needs ..."
    subdivisions: Callable[[str], bool | None]  # database type -> has subdivisions; None: refused
    decoder: Callable[[RecordDecoder], Callable[[Any], T]]
    empty: T  # the answer for an IPv6 address in an IPv4-only database


def country_subdivisions(database_type: str) -> bool | None:
    """Country databases have no subdivisions; City and Enterprise ones do."""
    if database_type in ("GeoIP2-Country", "GeoLite2-Country", "DBIP-Country-Lite"):
        return False
    if database_type in ("GeoIP2-City", "GeoLite2-City", "GeoIP2-Enterprise"):
        return True
    if database_type.startswith("GeoIP2-City-"):  # regional editions: -Europe, -Africa, ...
        return True
    if database_type == "DBIP-City-Lite":
        # Same layout, but its subdivisions carry names and no ISO codes: a rule naming
        # "UA-43" would silently never match, so say at load that it cannot work.
        return False
    return None


def anonymous_subdivisions(database_type: str) -> bool | None:
    # GeoIP Anonymous Plus extends the Anonymous-IP record with more keys, same flags.
    if database_type in ("GeoIP2-Anonymous-IP", "GeoIP-Anonymous-Plus"):
        return False
    return None


def asn_subdivisions(database_type: str) -> bool | None:
    """ASN databases: GeoLite2-ASN, GeoIP2-ISP (which has the same autonomous_system_number),
    and DB-IP's GeoLite2-ASN-compatible edition."""
    if database_type in ("GeoLite2-ASN", "GeoIP2-ISP") or database_type.startswith("DBIP-ASN-Lite"):
        return False
    return None


def signature(path: str) -> tuple[int, ...]:
    """What changes when the file is replaced (geoipupdate renames a new file into place)."""
    return _signature(os.stat(path))


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
