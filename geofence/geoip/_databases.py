"""Country and anonymous-IP lookups: embedded iptocc data and MaxMind databases, with reload.

``open_country_db`` / ``open_anonymous_db`` are called once, when the engine is built; any
problem with a database is a :class:`ConfigError` then. Afterwards ``find`` takes the parsed
address (``lookup`` its canonical text) and returns an immutable answer, or raises
:class:`DatabaseError`, which the engine turns into ``db_error``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from geofence._cache import BoundedCache
from geofence._errors import ConfigError, DatabaseError
from geofence.clientip._addresses import IP
from geofence.config import GeoIPPolicy
from geofence.geoip._kinds import (
    CACHE_SIZE,
    Kind,
    anonymous_subdivisions,
    asn_subdivisions,
    country_subdivisions,
)
from geofence.geoip._records import (
    NO_ASN,
    NO_COUNTRY,
    NO_FLAGS,
    NOT_FOUND,
    GeoRecord,
    iso_countries,
)
from geofence.geoip._reloading import Reloading, log_loaded

if TYPE_CHECKING:
    from geofence.geoip._mmdb import MaxMindDB
    from geofence.geoip._watch import DatabaseWatch

T = TypeVar("T")

__all__ = [
    "AnonymousDB",
    "AsnDB",
    "CountryDB",
    "EmbeddedCountryDB",
    "GeoRecord",
    "open_anonymous_db",
    "open_asn_db",
    "open_country_db",
]


class CountryDB(Protocol):
    has_subdivisions: bool
    reloads: int  # how many times the file was swapped for a new one: a cache generation
    description: str  # e.g. "GeoIP2-City database '/var/lib/GeoIP/GeoIP2-City.mmdb'"

    def find(self, ip: IP) -> GeoRecord:
        """Raises geofence.errors.DatabaseError on failure."""
        ...

    def find_prefix(self, ip: IP) -> tuple[GeoRecord, int]:
        """``find``, and the number of leading bits of ``ip`` the answer holds for."""
        ...

    def lookup(self, ip: str) -> GeoRecord:
        """``ip`` is canonical text; the same answer as ``find`` for that address."""
        ...


class AnonymousDB(Protocol):
    description: str
    reloads: int

    def find(self, ip: IP) -> frozenset[str]:
        """Network types of ``ip`` ("vpn", "tor", ...); raises DatabaseError on failure."""
        ...

    def find_prefix(self, ip: IP) -> tuple[frozenset[str], int]:
        """``find``, and the number of leading bits of ``ip`` the answer holds for."""
        ...

    def lookup(self, ip: str) -> frozenset[str]:
        """``ip`` is canonical text; the same answer as ``find`` for that address."""
        ...


class AsnDB(Protocol):
    description: str
    reloads: int

    def find(self, ip: IP) -> int:
        """The autonomous system number of ``ip``, 0 (NO_ASN) when the database has none;
        raises DatabaseError on failure."""
        ...

    def find_prefix(self, ip: IP) -> tuple[int, int]:
        """``find``, and the number of leading bits of ``ip`` the answer holds for."""
        ...

    def lookup(self, ip: str) -> int:
        """``ip`` is canonical text; the same answer as ``find`` for that address."""
        ...


COUNTRY = Kind(
    key="geoip.country_db",
    wants="a GeoIP2/GeoLite2 Country, City or Enterprise database",
    subdivisions=country_subdivisions,
    decoder=lambda decoder: decoder.country,
    empty=NOT_FOUND,
)
ANONYMOUS = Kind(
    key="geoip.anonymous_db",
    wants="a GeoIP2-Anonymous-IP database",
    subdivisions=anonymous_subdivisions,
    decoder=lambda decoder: decoder.anonymous,
    empty=NO_FLAGS,
)

ASN = Kind(
    key="geoip.asn_db",
    wants="a GeoLite2-ASN or GeoIP2-ISP database",
    subdivisions=asn_subdivisions,
    decoder=lambda decoder: decoder.asn,
    empty=NO_ASN,
)


class EmbeddedCountryDB:
    """Countries from Regional Internet Registry data shipped inside the ``iptocc`` wheel.

    Registry data says where a block is *allocated*, not where its users are, and has no
    subdivisions: good for trying geofence out, not for enforcing sanctions.
    """

    has_subdivisions = False
    description = "the embedded default (iptocc, RIR data)"
    reloads = 0  # the embedded data never changes

    def __init__(self, country_code: Callable[[str], str | None]) -> None:
        self._country_code = country_code
        # RIR files also use "EU" and "AP" (somewhere in a region): those name no country.
        # The codes are the ones the config accepts (geofence._iso3166), "XK" included.
        self._answers = {code: GeoRecord(True, code) for code in iso_countries()}
        self._cache: BoundedCache[str, GeoRecord] = BoundedCache(CACHE_SIZE)

    def find(self, ip: IP) -> GeoRecord:
        return self.lookup(ip.text)  # iptocc takes text

    def find_prefix(self, ip: IP) -> tuple[GeoRecord, int]:
        # iptocc tells no network: the answer holds for this one address.
        return self.lookup(ip.text), 32 if ip.version == 4 else 128

    def lookup(self, ip: str) -> GeoRecord:
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        try:
            code = self._country_code(ip)
        except Exception as error:
            raise DatabaseError(f"embedded lookup of {ip} failed: {error}") from None
        if code is None:
            answer = NOT_FOUND
        elif isinstance(code, str):
            answer = self._answers.get(code, NO_COUNTRY)
        else:
            raise DatabaseError(f"embedded lookup of {ip} returned {code!r}")
        return self._cache.put(ip, answer)


def open_embedded() -> EmbeddedCountryDB:
    key = "geoip.country_db"
    try:
        from iptocc import country_code
    except ImportError as error:
        raise ConfigError(
            key,
            f"the embedded default needs the iptocc package ({error}); install it, or set "
            f"{key} to a MaxMind database",
        ) from None
    db = EmbeddedCountryDB(country_code)
    try:
        for ip in ("8.8.8.8", "2001:4860:4860::8888"):
            db.lookup(ip)
    except DatabaseError as error:
        raise ConfigError(key, f"the embedded default cannot answer: {error}") from None
    return db


def open_country_db(
    geoip: GeoIPPolicy, clock: Callable[[], float], watch: DatabaseWatch | None = None
) -> CountryDB:
    """Open (and smoke-test) the country database; ConfigError("geoip.country_db", ...).
    ``watch`` hears of its load (stale warning), reloads and refused replacements."""
    if geoip.country_db is None:
        return open_embedded()
    return _open_maxmind(geoip.country_db, COUNTRY, geoip, clock, watch)


def open_anonymous_db(
    geoip: GeoIPPolicy, clock: Callable[[], float], watch: DatabaseWatch | None = None
) -> AnonymousDB | None:
    """Open the anonymous-IP database if configured; ConfigError("geoip.anonymous_db", ...)."""
    if geoip.anonymous_db is None:
        return None
    return _open_maxmind(geoip.anonymous_db, ANONYMOUS, geoip, clock, watch)


def open_asn_db(
    geoip: GeoIPPolicy, clock: Callable[[], float], watch: DatabaseWatch | None = None
) -> AsnDB | None:
    """Open the ASN database if configured; ConfigError("geoip.asn_db", ...)."""
    if geoip.asn_db is None:
        return None
    return _open_maxmind(geoip.asn_db, ASN, geoip, clock, watch)


def open_mmdb(path: str, kind: Kind[T], mode: int) -> MaxMindDB[T]:
    """:func:`geofence.geoip._mmdb.open_mmdb`, imported on first use: the MaxMind wrapper (and
    its tree reader) is loaded only by a policy that names a file."""
    from geofence.geoip import _mmdb

    return _mmdb.open_mmdb(path, kind, mode)


def reader_mode(name: str) -> int:
    """:func:`geofence.geoip._mmdb.reader_mode`, imported on first use."""
    from geofence.geoip import _mmdb

    return _mmdb.reader_mode(name)


def _open_maxmind(
    path: str,
    kind: Kind[T],
    geoip: GeoIPPolicy,
    clock: Callable[[], float],
    watch: DatabaseWatch | None = None,
) -> MaxMindDB[T] | Reloading[T]:
    mode = reader_mode(geoip.reader)
    first = open_mmdb(path, kind, mode)
    log_loaded(first, kind.key, again=False)
    if watch is not None:
        watch.loaded(first, kind.key)
    if geoip.reload_interval <= 0:
        return first
    return Reloading(
        first,
        lambda: open_mmdb(path, kind, mode),
        kind.key,
        geoip.reload_interval,
        clock,
        watch,
    )
