"""ISO 3166 region codes: which ones a policy may use, and helpful words for the ones it may not.

Validity comes from :mod:`geofence._iso3166`, the one list of codes that database records are
decoded against too (so ``XK``, Kosovo, is accepted here *and* found in records), never from a
list kept here. What *is* kept here are hints: codes people write by mistake (``UK``, ``EL``,
``EU``, MaxMind's and Cloudflare's pseudo-codes) and what to write instead.

The tables are built lazily, the first time a code of that kind is checked (see _iso3166), and
difflib and unicodedata are imported by the explanations that use them: a valid policy never
loads them.
"""

from __future__ import annotations

import re
from functools import cache

from geofence import _iso3166 as iso
from geofence._iso3166 import KOSOVO

ANY = "*"  # every client with a known country
UNKNOWN = "unknown"  # clients with no country (not found, no country, unresolved)

GROUP_NAME = re.compile(r"[a-z0-9_-]+\Z")
_COUNTRY = re.compile(r"[A-Z]{2}\Z")
_SUBDIVISION = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})\Z")

# Codes that are not countries, and what to write instead.
_PSEUDO = {
    "XX": "a placeholder some services send for an unknown country; to match clients without "
    "a country use 'unknown'",
    "ZZ": "a user-assigned code often used for 'unknown country'; to match clients without a "
    "country use 'unknown'",
    "T1": 'Cloudflare\'s pseudo-code for Tor exit nodes; use anonymizers = ["tor"] '
    "(needs geoip.anonymous_db)",
    "EU": "the European Union; list the member states (a [regions] group keeps them in one place)",
    "AP": "MaxMind's legacy pseudo-code for 'Asia/Pacific'; list the countries",
    "A1": "MaxMind's legacy pseudo-code for anonymous proxies; use anonymizers = "
    '["vpn", "public_proxy"] (needs geoip.anonymous_db)',
    "A2": "MaxMind's legacy pseudo-code for satellite providers; geofence has no equivalent",
    "O1": "MaxMind's legacy pseudo-code for 'other country'; use 'unknown'",
    "EZ": "the eurozone; list the countries",
    "UN": "the United Nations",
}

# Reserved or withdrawn ISO 3166-1 codes that people still write, with today's code(s).
_REPLACED = {
    "UK": ("GB",),
    "EL": ("GR",),
    "FX": ("FR",),
    "BU": ("MM",),
    "TP": ("TL",),
    "ZR": ("CD",),
    "DD": ("DE",),
    "SF": ("FI",),
    "YU": ("RS", "ME"),
    "CS": ("CZ", "SK", "RS", "ME"),
    "AN": ("BQ", "CW", "SX"),
    "AC": ("SH-AC",),
    "TA": ("SH-TA",),
    "IC": ("ES-CN",),
    "EA": ("ES-CE", "ES-ML"),
    "DG": ("IO",),
    "CP": ("FR-CP",),
}

# ISO 3166-2 entries that ISO also codes as countries. Geolocation databases report the country
# code (a client in Hong Kong has country HK, never CN with subdivision HK), so the subdivision
# form would silently never match.
_ALSO_COUNTRIES = {
    "CN-HK": "HK",
    "CN-MO": "MO",
    "CN-TW": "TW",
    "FI-01": "AX",
    "FR-971": "GP",
    "FR-972": "MQ",
    "FR-973": "GF",
    "FR-974": "RE",
    "FR-976": "YT",
    "FR-BL": "BL",
    "FR-MF": "MF",
    "FR-NC": "NC",
    "FR-PF": "PF",
    "FR-PM": "PM",
    "FR-TF": "TF",
    "FR-WF": "WF",
    "NL-AW": "AW",
    "NL-CW": "CW",
    "NL-SX": "SX",
    "NL-BQ1": "BQ",
    "NL-BQ2": "BQ",
    "NL-BQ3": "BQ",
    "NO-21": "SJ",
    "NO-22": "SJ",
    "US-AS": "AS",
    "US-GU": "GU",
    "US-MP": "MP",
    "US-PR": "PR",
    "US-UM": "UM",
    "US-VI": "VI",
}

# Everyday names that pycountry's names and fuzzy search do not lead to (hints only).
_NAME_ALIASES = {
    "kosovo": KOSOVO,
    "turkey": "TR",
    "burma": "MM",
    "ivory coast": "CI",
    "macau": "MO",
    "crimea": "UA-43",
    "sevastopol": "UA-40",
    "uk": "GB",
    "usa": "US",
    "america": "US",
    "holland": "NL",
    "czechia": "CZ",
}

# Letters that look like ASCII capitals (Cyrillic, Greek): enough to suggest the intended code.
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТУХІЈЅԁаеорсухіјѕΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "ABEKMHOPCTYXIJSdaeopcyxijsABEZHIKMNOPTYX",
)


class RegionCodeError(ValueError):
    """``str(error)`` says why the code is refused and, where possible, what to write."""


def check_code(code: str) -> str:
    """Return ``code`` if a policy may use it ("CN", "UA-43", "*", "unknown"), else raise.

    Group references (``@name``) are the caller's business: only the caller knows the groups.
    """
    if code in (ANY, UNKNOWN) or code in iso.countries():
        return code
    if _SUBDIVISION.match(code) and code in iso.subdivisions() and code not in _ALSO_COUNTRIES:
        return code
    raise RegionCodeError(_explain(code))


def is_country(code: str) -> bool:
    return code in iso.countries()


def is_subdivision(code: str) -> bool:
    return _SUBDIVISION.match(code) is not None and code in iso.subdivisions()


def region_name(code: str) -> str | None:
    """English name of a valid code ("China", "England"), for explanations; None if unknown."""
    if _COUNTRY.match(code):
        return iso.country_names().get(code)
    if _SUBDIVISION.match(code):
        return iso.subdivision_names().get(code)
    return None


# -- lookup tables, built once on first use ------------------------------------------------------


@cache
def _alpha3() -> dict[str, str]:
    import pycountry

    table = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
    table.update(iso.EXTRA_ALPHA3)
    return table


@cache
def _numeric() -> dict[str, str]:
    import pycountry

    return {c.numeric: c.alpha_2 for c in pycountry.countries}


@cache
def _names() -> dict[str, str]:
    """Folded country and subdivision names -> code, for "did you mean" on names."""
    import pycountry

    table: dict[str, str] = {}
    for s in pycountry.subdivisions:
        table.setdefault(_fold(s.name), s.code)
    # Countries win over subdivisions of the same name (Georgia is GE, not US-GA).
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            name = getattr(c, attr, None)
            if name:
                table[_fold(name)] = c.alpha_2
    table.update(_NAME_ALIASES)
    return table


@cache
def _historic() -> dict[str, str]:
    import pycountry

    return {c.alpha_2: c.name for c in pycountry.historic_countries}


def _fold(text: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold().strip()


# -- explanations (only on the error path, so speed does not matter here) -------------------------


def _explain(code: str) -> str:
    import unicodedata

    shown = repr(code)
    if not code:
        return 'empty region code; write an ISO 3166 code such as "CN" or "GB-ENG"'
    bad = next((ch for ch in code if not ch.isascii()), None)
    if bad is not None:
        reason = (
            f"{shown} contains a non-ASCII character {bad!r} "
            f"(U+{ord(bad):04X} {unicodedata.name(bad, 'unnamed character')}); "
            "ISO 3166 codes are ASCII letters and digits"
        )
        ascii_form = unicodedata.normalize("NFKC", code).translate(_LOOKALIKES)
        suggestion = _suggest_valid(ascii_form.strip().upper()) if ascii_form.isascii() else None
        return reason + (f" (did you mean {suggestion!r}?)" if suggestion else "")
    if code != code.strip():
        suggestion = _suggest_valid(code.strip())
        return f"{shown} has spaces around it" + _did_you_mean(suggestion)
    upper = code.upper()
    if upper in ("UNKNOWN", "ANY", "ALL"):
        hint = UNKNOWN if upper == "UNKNOWN" else ANY
        return f"{shown} is not a region code (did you mean {hint!r}?)"
    if upper in _PSEUDO:
        return f"{shown} is not a country: it is {_PSEUDO[upper]}"
    if code != upper and _is_valid(upper):
        return f"{shown} is not an ISO 3166 code: codes are upper-case (did you mean {upper!r}?)"
    if _COUNTRY.match(upper):
        return _explain_two_letters(code, upper)
    if re.fullmatch(r"[A-Z]{3}", upper) and upper in _alpha3():
        return (
            f"{shown} is an ISO 3166-1 alpha-3 code; geofence uses alpha-2 codes "
            f"(did you mean {_alpha3()[upper]!r}?)"
        )
    if re.fullmatch(r"[0-9]{3}", code) and code in _numeric():
        return (
            f"{shown} is an ISO 3166-1 numeric code; geofence uses alpha-2 codes "
            f"(did you mean {_numeric()[code]!r}?)"
        )
    if upper in _ALSO_COUNTRIES:
        country = _ALSO_COUNTRIES[upper]
        return (
            f"{shown} has its own country code {country!r}, which is what geolocation databases "
            f"report, so {shown} would never match (write {country!r})"
        )
    if re.fullmatch(r"[A-Za-z]{2}-.+", code):
        return _explain_subdivision(code, upper)
    dashed = re.sub(r"[ _.]", "-", upper, count=1)
    if dashed != upper and _is_valid(dashed):
        return f"{shown} is not an ISO 3166 code (did you mean {dashed!r}?)"
    names = _name_suggestions(code)
    if names:
        listed = " or ".join(repr(n) for n in names)
        return f"{shown} is not an ISO 3166 code (did you mean {listed}?)"
    return (
        f'{shown} is not an ISO 3166 code; write an ISO 3166-1 alpha-2 country code ("CN"), an '
        'ISO 3166-2 subdivision code ("GB-ENG"), "@group", "*" or "unknown"'
    )


def _explain_two_letters(code: str, upper: str) -> str:
    shown = repr(code)
    if upper in _REPLACED:
        new = _REPLACED[upper]
        if len(new) == 1:
            return f"{shown} is not an ISO 3166-1 code (did you mean {new[0]!r}?)"
        listed = ", ".join(repr(c) for c in new)
        return f"{shown} is not an ISO 3166-1 code any more; list its successors {listed}"
    if upper in _historic():
        return f"{shown} ({_historic()[upper]}) was withdrawn from ISO 3166-1; use today's codes"
    if upper == "AA" or "QM" <= upper <= "QZ" or "XA" <= upper <= "XZ":
        return (
            f"{shown} is a user-assigned code, not a country (the only one geofence accepts is "
            "'XK', Kosovo)"
        )
    return f"{shown} is not an ISO 3166-1 alpha-2 country code"


def _explain_subdivision(code: str, upper: str) -> str:
    shown = repr(code)
    country, _, rest = upper.partition("-")
    if country not in iso.countries():
        fixed = _REPLACED.get(country, ("",))[0]
        candidate = f"{fixed}-{rest}"
        if len(fixed) == 2 and candidate in iso.subdivisions():
            return f"{shown}: {country!r} is not an ISO 3166-1 code (did you mean {candidate!r}?)"
        return f"{shown}: {country!r} is not an ISO 3166-1 alpha-2 country code"
    if code != upper and upper in iso.subdivisions():
        return f"{shown} is not an ISO 3166-2 code: codes are upper-case (did you mean {upper!r}?)"
    by_name = _names().get(_fold(code[3:]))
    if by_name is not None and by_name.startswith(country + "-"):
        return f"{shown} is not an ISO 3166-2 code (did you mean {by_name!r}?)"
    import difflib

    same_country = sorted(s for s in iso.subdivisions() if s.startswith(country + "-"))
    close = difflib.get_close_matches(upper, same_country, n=1, cutoff=0.75)
    if close:
        return f"{shown} is not an ISO 3166-2 subdivision of {country} (did you mean {close[0]!r}?)"
    if not same_country:
        return f"{shown}: {country} has no ISO 3166-2 subdivisions; use {country!r}"
    examples = ", ".join(same_country[:3])
    return (
        f"{shown} is not an ISO 3166-2 subdivision of {country} "
        f"(its codes look like {examples}, ...)"
    )


def _name_suggestions(text: str) -> tuple[str, ...]:
    import difflib

    folded = _fold(text)
    names = _names()
    exact = names.get(folded)
    if len(folded) >= 4:
        # "Russia" starts a word of "Russian Federation"; "Congo" is in two names: offer both.
        word = re.compile(r"\b" + re.escape(folded))
        found = {c for n, c in names.items() if word.search(n)}
        countries = {c for c in found if len(c) == 2}
        found = countries or found
        if 0 < len(found) <= 3:
            return tuple(sorted(found, key=lambda c: (c != exact, c)))
    if exact is not None:
        return (exact,)
    close = difflib.get_close_matches(folded, list(names), n=1, cutoff=0.85)
    if close:
        return (names[close[0]],)
    if len(folded) < 4:
        return ()
    import pycountry

    try:
        fuzzy = pycountry.countries.search_fuzzy(text)
    except LookupError:
        return ()
    return (str(fuzzy[0].alpha_2),) if fuzzy else ()


def _is_valid(code: str) -> bool:
    try:
        check_code(code)
    except RegionCodeError:
        return False
    return True


def _suggest_valid(code: str) -> str | None:
    if _is_valid(code):
        return code
    if _is_valid(code.upper()):
        return code.upper()
    return None


def _did_you_mean(suggestion: str | None) -> str:
    return f" (did you mean {suggestion!r}?)" if suggestion else ""
