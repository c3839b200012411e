"""Databases: the embedded default, MaxMind readers, reloading, and record decoding.

:func:`open_country_db`, :func:`open_anonymous_db` and :func:`open_asn_db` open (and
smoke-test) what a :class:`geofence.config.GeoIPPolicy` names, once, when the engine is built;
any problem is a ``ConfigError`` then. Afterwards ``find`` (a parsed address) and ``lookup``
(its canonical text) return shared immutable answers (:class:`GeoRecord`, a frozenset of
network types, or an autonomous system number, 0 for none), or raise ``DatabaseError``. A
record's country is checked against the same ISO 3166 list as the config (``XK`` included);
pseudo-codes (``EU``, ``AP``, ``XX``, ``A1``, ``A2``, ``O1``) are a record without a country.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence._lazy import exports
from geofence.geoip._databases import (
    ANONYMOUS,
    ASN,
    COUNTRY,
    AnonymousDB,
    AsnDB,
    CountryDB,
    EmbeddedCountryDB,
    open_anonymous_db,
    open_asn_db,
    open_country_db,
)
from geofence.geoip._kinds import CACHE_SIZE, Kind
from geofence.geoip._records import (
    NO_ASN,
    NO_COUNTRY,
    NO_FLAGS,
    NOT_FOUND,
    GeoRecord,
    RecordDecoder,
    iso_countries,
)
from geofence.geoip._reloading import Reloading

if TYPE_CHECKING:
    from geofence.geoip._mmdb import MODES, MaxMindDB, has_extension, open_mmdb

# The MaxMind wrapper's names load it on first use (see geofence._lazy): an engine on the
# embedded database never does.
_WHERE = {"MODES": "_mmdb", "MaxMindDB": "_mmdb", "has_extension": "_mmdb", "open_mmdb": "_mmdb"}

__all__ = [
    "ANONYMOUS",
    "ASN",
    "CACHE_SIZE",
    "COUNTRY",
    "MODES",
    "NOT_FOUND",
    "NO_ASN",
    "NO_COUNTRY",
    "NO_FLAGS",
    "AnonymousDB",
    "AsnDB",
    "CountryDB",
    "EmbeddedCountryDB",
    "GeoRecord",
    "Kind",
    "MaxMindDB",
    "RecordDecoder",
    "Reloading",
    "has_extension",
    "iso_countries",
    "open_anonymous_db",
    "open_asn_db",
    "open_country_db",
    "open_mmdb",
]

__getattr__, __dir__ = exports(__name__, globals(), _WHERE)
