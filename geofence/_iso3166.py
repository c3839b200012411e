"""The one list of ISO 3166 codes in geofence: which country and subdivision codes exist.

Both sides of a region rule read it: the config check (a policy may name ``XK``) and the
decoding of database records (a record for ``XK`` is a client in Kosovo, not a client without a
country). Two lists would let a code be accepted on one side and never produced on the other,
which is how a rule on Kosovo once matched nobody.

Country codes are :data:`ISO_COUNTRIES`, ISO 3166-1 alpha-2 written out here (249 codes, which
change about once a decade; a test checks them against :mod:`pycountry`), plus the user-assigned
codes in :data:`EXTRA_COUNTRIES`: checking a policy's country codes and decoding records need no
import. Subdivision codes and all names come from :mod:`pycountry` (ISO 3166-2 changes every
year, maintained upstream). pycountry costs ~0.1 s and ~8 MB of resident memory to import and
another ~0.1 s to load the subdivisions; both happen lazily, on first use of a subdivision or a
name, and each table is built once.
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


# One text rather than 249 string constants: smaller in the .pyc and in memory once split.
_ISO_COUNTRY_TEXT = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW
"""

#: Every ISO 3166-1 alpha-2 code (officially assigned), as pycountry 24.6 to 26.2 list them.
ISO_COUNTRIES: frozenset[str] = frozenset(_ISO_COUNTRY_TEXT.split())

_COUNTRIES = ISO_COUNTRIES.union(EXTRA_COUNTRIES)


def countries() -> frozenset[str]:
    """Every country code geofence knows: ISO 3166-1 alpha-2 plus :data:`EXTRA_COUNTRIES`."""
    return _COUNTRIES


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
