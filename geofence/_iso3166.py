"""The one list of ISO 3166 codes in geofence: which country and subdivision codes exist.

Both sides of a region rule read it: the config check (a policy may name ``XK``) and the
decoding of database records (a record for ``XK`` is a client in Kosovo, not a client without a
country). Two lists would let a code be accepted on one side and never produced on the other,
which is how a rule on Kosovo once matched nobody.

The codes come from :mod:`pycountry` (ISO 3166-1 and ISO 3166-2, maintained upstream) plus the
user-assigned codes in :data:`EXTRA_COUNTRIES`. pycountry takes ~0.1 s to import and another
~0.1 s to load the subdivisions; both happen lazily, on first use, and each table is built once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

KOSOVO = "XK"

#: User-assigned codes that geofence counts as countries, with their English names. ``XK`` is
#: not in ISO 3166-1, but the European Commission, MaxMind, the RIRs and most geolocation data
#: use it, so a policy must be able to name it and a record carrying it has a country.
EXTRA_COUNTRIES: Mapping[str, str] = MappingProxyType({KOSOVO: "Kosovo"})

#: Their ISO 3166-1 alpha-3 forms, for "did you mean" hints.
EXTRA_ALPHA3: Mapping[str, str] = MappingProxyType({"XKX": KOSOVO})


@cache
def countries() -> frozenset[str]:
    """Every country code geofence knows: ISO 3166-1 alpha-2 plus :data:`EXTRA_COUNTRIES`."""
    import pycountry

    return frozenset(str(c.alpha_2) for c in pycountry.countries).union(EXTRA_COUNTRIES)


@cache
def country_names() -> Mapping[str, str]:
    """Country code -> English common name ("China", "Kosovo")."""
    import pycountry

    names = {
        str(c.alpha_2): str(getattr(c, "common_name", None) or c.name) for c in pycountry.countries
    }
    names.update(EXTRA_COUNTRIES)
    return MappingProxyType(names)


@cache
def subdivisions() -> frozenset[str]:
    """Every ISO 3166-2 subdivision code ("UA-43", "GB-ENG")."""
    import pycountry

    return frozenset(str(s.code) for s in pycountry.subdivisions)


@cache
def subdivision_names() -> Mapping[str, str]:
    """Subdivision code -> English name ("England")."""
    import pycountry

    return MappingProxyType({str(s.code): str(s.name) for s in pycountry.subdivisions})
