"""ISO 3166 code validation: validity from pycountry, hints for the usual mistakes."""

from __future__ import annotations

import pycountry
import pytest

from geofence.rules import RegionCodeError, check_code
from geofence.rules import _regions as regions  # the hint tables, checked against pycountry


@pytest.mark.parametrize(
    "code",
    [
        "CN",
        "GB",
        "US",
        "HK",
        "MO",
        "TW",
        "XK",
        "UA-43",
        "UA-40",
        "GB-ENG",
        "US-WA",
        "FR-75C",
        "*",
        "unknown",
    ],
)
def test_valid(code: str) -> None:
    assert check_code(code) == code


def test_every_pycountry_country_and_subdivision_is_accepted() -> None:
    for country in pycountry.countries:
        assert check_code(country.alpha_2) == country.alpha_2
    for sub in pycountry.subdivisions:
        if sub.code not in regions._ALSO_COUNTRIES:
            assert check_code(sub.code) == sub.code


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("UK", "did you mean 'GB'?"),
        ("uk", "did you mean 'GB'?"),
        ("EL", "did you mean 'GR'?"),
        ("cn", "did you mean 'CN'?"),
        ("Cn", "did you mean 'CN'?"),
        ("gb-eng", "did you mean 'GB-ENG'?"),
        ("GB_ENG", "did you mean 'GB-ENG'?"),
        ("UK-ENG", "did you mean 'GB-ENG'?"),
        ("US-Washington", "did you mean 'US-WA'?"),
        ("Russia", "did you mean 'RU'?"),
        ("china", "did you mean 'CN'?"),
        ("Korea", "did you mean 'KP' or 'KR'?"),
        ("England", "did you mean 'GB-ENG'?"),
        ("Crimea", "did you mean 'UA-43'?"),
        ("Kosovo", "did you mean 'XK'?"),
        ("Georgia", "'GE'"),
        ("CHN", "alpha-3 code; geofence uses alpha-2 codes (did you mean 'CN'?)"),
        ("rus", "did you mean 'RU'?"),
        ("156", "numeric code; geofence uses alpha-2 codes (did you mean 'CN'?)"),
        ("XX", "is not a country"),
        ("ZZ", "use 'unknown'"),
        ("T1", 'anonymizers = ["tor"]'),
        ("EU", "European Union"),
        ("AP", "Asia/Pacific"),
        ("A1", "anonymous proxies"),
        ("A2", "satellite"),
        ("O1", "'other country'"),
        ("QZ", "user-assigned"),
        ("XA", "user-assigned"),
        ("SU", "withdrawn"),
        ("YU", "'RS', 'ME'"),
        ("ZR", "did you mean 'CD'?"),
        ("\u0421N", "non-ASCII character 'С' (U+0421 CYRILLIC CAPITAL LETTER ES)"),
        ("\u0421N", "did you mean 'CN'?"),
        ("\uff23\uff2e", "did you mean 'CN'?"),  # fullwidth
        ("R\u03a5", "GREEK CAPITAL LETTER UPSILON"),
        (" CN", "has spaces around it (did you mean 'CN'?)"),
        ("", "empty region code"),
        ("Unknown", "did you mean 'unknown'?"),
        ("ALL", "did you mean '*'?"),
        ("CN-HK", "has its own country code 'HK'"),
        ("US-PR", "write 'PR'"),
        ("UA-99", "not an ISO 3166-2 subdivision of UA"),
        ("AQ-01", "AQ has no ISO 3166-2 subdivisions"),
        ("ZX-01", "'ZX' is not an ISO 3166-1 alpha-2 country code"),
        ("zx", "not an ISO 3166-1 alpha-2 country code"),
        ("no such place at all", "write an ISO 3166-1 alpha-2 country code"),
    ],
)
def test_invalid_with_hint(code: str, fragment: str) -> None:
    with pytest.raises(RegionCodeError) as caught:
        check_code(code)
    assert fragment in str(caught.value)


def test_hint_tables_agree_with_pycountry() -> None:
    """The hints are hand-written; pycountry is the truth. Catch a hint gone stale."""
    for code, country in regions._ALSO_COUNTRIES.items():
        assert pycountry.subdivisions.get(code=code) is not None, code  # type: ignore[no-untyped-call]
        assert regions.is_country(country), code
    for code, successors in regions._REPLACED.items():
        assert not regions.is_country(code), code
        for new in successors:
            assert check_code(new) == new
    for code in regions._PSEUDO:
        assert not regions.is_country(code), code
    for alias, code in regions._NAME_ALIASES.items():
        assert check_code(code) == code, alias


def test_names_and_kinds() -> None:
    assert regions.region_name("CN") == "China"
    assert regions.region_name("XK") == "Kosovo"
    assert regions.region_name("GB-ENG") == "England"
    assert regions.region_name("ZZ") is None
    assert regions.is_country("XK") and not regions.is_country("UA-43")
    assert regions.is_subdivision("UA-43") and not regions.is_subdivision("CN")


def test_group_name_pattern() -> None:
    assert regions.GROUP_NAME.match("sanctioned_2-eu")
    for bad in ("Sanctioned", "a b", "@eu", "", "ü"):
        assert not regions.GROUP_NAME.match(bad)
