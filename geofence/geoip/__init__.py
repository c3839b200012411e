"""Databases: the embedded default, MaxMind readers, reloading, and record decoding.

:func:`open_country_db` / :func:`open_anonymous_db` open (and smoke-test) what a
:class:`geofence.config.GeoIPPolicy` names, once, when the engine is built; any problem is a
``ConfigError`` then. Afterwards ``find`` (a parsed address) and ``lookup`` (its canonical
text) return shared immutable answers (:class:`GeoRecord`, or a frozenset of network types),
or raise ``DatabaseError``. A record's country is checked against the same ISO 3166 list as the
config (``XK`` included); pseudo-codes (``EU``, ``AP``, ``XX``, ``A1``, ``A2``, ``O1``) are a
record without a country.
"""

from geofence.geoip._databases import (
    ANONYMOUS,
    COUNTRY,
    AnonymousDB,
    CountryDB,
    EmbeddedCountryDB,
    open_anonymous_db,
    open_country_db,
)
from geofence.geoip._mmdb import CACHE_SIZE, MODES, Kind, MaxMindDB, has_extension, open_mmdb
from geofence.geoip._records import (
    NO_COUNTRY,
    NO_FLAGS,
    NOT_FOUND,
    GeoRecord,
    RecordDecoder,
    iso_countries,
)
from geofence.geoip._reloading import Reloading

__all__ = [
    "ANONYMOUS",
    "CACHE_SIZE",
    "COUNTRY",
    "MODES",
    "NOT_FOUND",
    "NO_COUNTRY",
    "NO_FLAGS",
    "AnonymousDB",
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
    "open_country_db",
    "open_mmdb",
]
