"""Country and anonymous-IP lookups: embedded iptocc data and MaxMind databases, with reload.

OWNER: database helper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .policy import GeoIPPolicy


@dataclass(frozen=True, slots=True)
class GeoRecord:
    found: bool  # False: the address is not in the database
    country: str | None  # ISO 3166-1 alpha-2; None for a record without a country
    subdivisions: tuple[str, ...] = ()  # full ISO 3166-2 codes, e.g. ("GB-ENG",)


class CountryDB(Protocol):
    has_subdivisions: bool
    description: str  # e.g. "GeoIP2-City database /var/lib/GeoIP/GeoIP2-City.mmdb"

    def lookup(self, ip: str) -> GeoRecord:
        """``ip`` is canonical text; raises geofence.errors.DatabaseError on failure."""
        ...


class AnonymousDB(Protocol):
    description: str

    def lookup(self, ip: str) -> frozenset[str]:
        """Network types of ``ip`` ("vpn", "tor", ...); raises DatabaseError on failure."""
        ...


def open_country_db(geoip: GeoIPPolicy, clock: Callable[[], float]) -> CountryDB:
    """Open (and smoke-test) the country database; ConfigError("geoip.country_db", ...)."""
    raise NotImplementedError


def open_anonymous_db(geoip: GeoIPPolicy, clock: Callable[[], float]) -> AnonymousDB | None:
    """Open the anonymous-IP database if configured; ConfigError("geoip.anonymous_db", ...)."""
    raise NotImplementedError
