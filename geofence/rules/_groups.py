"""Built-in region groups: ``@eu``, ``@eea``, the continents and sanctions presets.

Every group carries where its codes come from (:attr:`BuiltinGroup.source`) and the day they
were last checked against that source (:attr:`BuiltinGroup.checked`); ``geofence regions``
shows both. The tables are written out here, not computed at run time, so geofence needs no
extra runtime dependency:

- ``@eu``, ``@eea`` and the continents are generated from the ``country_converter`` package
  (columns ``EU``, ``EEA`` and ``Continent_7`` of its ``country_data.tsv``).
  ``tests/core/test_region_groups.py`` compares them with the installed package (a test
  dependency) and, when they differ, prints the tables to paste here.
- ``@us-comprehensive-sanctions`` is kept by hand from OFAC's program pages (see its note).

Conventions:

- **Continents**: every country code geofence knows is in exactly one continent.
  Transcontinental countries go where UN M49 puts them (``RU`` Europe; ``TR``, ``KZ``, ``GE``,
  ``AM``, ``AZ`` Asia; ``EG`` Africa), as country_converter's ``Continent_7`` does, which
  departs from M49 only for ``CY`` (Europe), ``IO`` (Asia) and the sub-Antarctic ``BV``,
  ``HM`` and ``TF`` (Antarctica); ``XK`` (not in M49) is in Europe.
- **@eu / @eea** are the member states. Territories that are part of the EU but have their
  own ISO 3166-1 code (``AX``, ``GF``, ``GP``, ``MQ``, ``RE``, ``YT``, ``MF``) are not in
  them: geolocation databases report those codes, so a policy that means "EU territory" adds
  them (``[regions] eu-territory = ["@eu", "AX", "GF", "GP", "MQ", "RE", "YT", "MF"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from geofence._record import record


@record(frozen=True)
class BuiltinGroup:
    """One built-in group; ``codes`` are sorted and pass :func:`geofence.rules.check_code`."""

    name: str  # without "@"
    title: str  # what it is, in a few words
    codes: tuple[str, ...]
    source: str  # a URL, or package + version
    checked: str  # ISO date the codes were last compared with the source
    note: str = ""  # conventions and caveats


COCO = "country_converter 1.3.2 (PyPI; https://github.com/IndEcol/country_converter)"
COCO_CHECKED = "2026-12-03"


def _codes(text: str) -> tuple[str, ...]:
    return tuple(sorted(text.split()))


_CONTINENT_NOTE = (
    "one continent per country: country_converter's Continent_7 (UN M49 regions for "
    "transcontinental countries: RU Europe, TR KZ GE AM AZ Asia, EG Africa; CY Europe, IO "
    "Asia, BV HM TF Antarctica)"
)

# fmt: off
# -- generated from country_converter (see tests/core/test_region_groups.py); do not edit -----
_GENERATED: dict[str, str] = {
    "eu": (
        "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
    ),
    "eea": (
        "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE "
        "SI SK"
    ),
    "africa": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY "
        "MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
        "ZM ZW"
    ),
    "antarctica": "AQ BV HM TF",
    "asia": (
        "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA "
        "LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE"
    ),
    "europe": (
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT "
        "JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
    ),
    "north-america": (
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
        "MX NI PA PM PR SV SX TC TT US VC VG VI"
    ),
    "oceania": (
        "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS"
    ),
    "south-america": "AR BO BR CL CO EC FK GF GS GY PE PY SR UY VE",
}
# -- end of generated tables ---------------------------------------------------------------------
# fmt: on

_TITLES = {
    "eu": "European Union member states",
    "eea": "European Economic Area: the EU plus Iceland, Liechtenstein and Norway",
    "africa": "Africa",
    "antarctica": "Antarctica and the sub-Antarctic islands",
    "asia": "Asia",
    "europe": "Europe",
    "north-america": "North America, Central America and the Caribbean",
    "oceania": "Oceania",
    "south-america": "South America",
}

_PACKAGE_GROUPS = tuple(
    BuiltinGroup(
        name=name,
        title=_TITLES[name],
        codes=_codes(text),
        source=COCO + (", column " + {"eu": "EU", "eea": "EEA"}.get(name, "Continent_7")),
        checked=COCO_CHECKED,
        note=(
            "member states only; EU territory with its own ISO code (AX GF GP MQ RE YT MF) is "
            "not included"
            if name in ("eu", "eea")
            else _CONTINENT_NOTE
        ),
    )
    for name, text in _GENERATED.items()
)

US_COMPREHENSIVE_SANCTIONS = BuiltinGroup(
    name="us-comprehensive-sanctions",
    title="jurisdictions under comprehensive US (OFAC) sanctions",
    # CU: Cuban Assets Control Regulations (31 CFR 515); IR: Iranian Transactions and
    # Sanctions Regulations (31 CFR 560); KP: North Korea Sanctions Regulations (31 CFR 510);
    # UA-43 and UA-40: the Crimea region of Ukraine (E.O. 13685), which ISO 3166-2 codes as the
    # Autonomous Republic of Crimea and the city of Sevastopol; UA-14 and UA-09: the so-called
    # Donetsk and Luhansk People's Republics (E.O. 14065), coded by their whole oblasts.
    codes=_codes("CU IR KP UA-09 UA-14 UA-40 UA-43"),
    source=(
        "OFAC, https://ofac.treasury.gov/sanctions-programs-and-country-information "
        "(Cuba, Iran, North Korea, Ukraine-/Russia-related: E.O. 13685 and E.O. 14065); "
        "Syria: https://ofac.treasury.gov/sanctions-programs-and-country-information/"
        "syria-related-sanctions"
    ),
    checked="2026-12-03",
    note=(
        "Syria (SY) is not included: E.O. 14312 of 30 June 2025 ended the Syria sanctions "
        "program on 1 July 2025 (OFAC then removed the Syrian Sanctions Regulations, 31 CFR "
        "542); sanctions on listed persons remain, and US export controls may still apply, so "
        'add "SY" yourself if your counsel says so. UA-14 and UA-09 are the whole Donetsk '
        "and Luhansk oblasts, larger than the covered regions of E.O. 14065 (OFAC FAQ 1009). "
        "Not legal advice: the list can change at any time; check OFAC before relying on it. "
        "Needs a country database with subdivisions (GeoIP2/GeoLite2 City or Enterprise)."
    ),
)

#: Every built-in group by name (without "@"), in the order ``geofence regions`` lists them.
BUILTIN_GROUPS: Mapping[str, BuiltinGroup] = MappingProxyType(
    {group.name: group for group in (*_PACKAGE_GROUPS, US_COMPREHENSIVE_SANCTIONS)}
)


def builtin_group(name: str) -> BuiltinGroup | None:
    """The built-in group ``name`` ("eu" or "@eu"), or None."""
    return BUILTIN_GROUPS.get(name[1:] if name.startswith("@") else name)


def groups_containing(code: str) -> tuple[str, ...]:
    """Names of the built-in groups that list ``code`` ("UA-43" -> us-comprehensive-sanctions)."""
    return tuple(name for name, group in BUILTIN_GROUPS.items() if code in group.codes)
