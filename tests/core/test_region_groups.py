"""Built-in region groups (DESIGN "Region groups", `geofence regions [NAME]`): their data,
checked against the package they were generated from, their use in a policy, and the command."""

from __future__ import annotations

import csv
import importlib.resources
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from tests_support import COUNTRY_DB, UA_CITY_DB

from geofence import ConfigError, Engine, RequestInfo, cli, load_policy
from geofence import _iso3166 as iso
from geofence.rules import check_code, is_country, is_subdivision
from geofence.rules._groups import (
    _GENERATED,
    BUILTIN_GROUPS,
    builtin_group,
    groups_containing,
)

DESIGN_NAMES = (
    "eu",
    "eea",
    "africa",
    "antarctica",
    "asia",
    "europe",
    "north-america",
    "oceania",
    "south-america",
    "us-comprehensive-sanctions",
)
CONTINENTS = DESIGN_NAMES[2:9]
CRIMEA = "31.43.0.1"  # UA, subdivision 43 in the UA fixture
DONETSK = "31.14.0.1"  # UA-14
KYIV_OBLAST = "31.30.0.1"  # UA-30: Ukraine outside the sanctioned regions
LONDON = "81.2.69.1"  # GB-ENG


def block(*codes: str, **extra: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "action": "block", "regions": list(codes), **extra}]}


def error_of(config: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        Engine.from_config(config)
    return caught.value


# -- the data -----------------------------------------------------------------------------------


def test_every_design_group_is_built_in() -> None:
    assert tuple(BUILTIN_GROUPS) == DESIGN_NAMES


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_code_passes_geofences_own_checks(name: str) -> None:
    group = BUILTIN_GROUPS[name]
    assert group.codes, name
    assert list(group.codes) == sorted(set(group.codes)), "sorted, no duplicates"
    for code in group.codes:
        assert check_code(code) == code
        assert is_country(code) or is_subdivision(code)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", group.checked)
    assert group.source and group.title


def test_continents_cover_every_country_once() -> None:
    seen: dict[str, str] = {}
    for name in CONTINENTS:
        for code in BUILTIN_GROUPS[name].codes:
            assert code not in seen, f"{code} in both @{seen[code]} and @{name}"
            seen[code] = name
    assert set(seen) == iso.countries()


@pytest.mark.parametrize(
    ("code", "continent"),
    [
        # The documented convention for transcontinental countries (UN M49 regions).
        ("RU", "europe"),
        ("TR", "asia"),
        ("KZ", "asia"),
        ("GE", "asia"),
        ("AZ", "asia"),
        ("EG", "africa"),
        ("CY", "europe"),
        ("PA", "north-america"),
        ("ID", "asia"),
        ("XK", "europe"),
        ("GL", "north-america"),
        ("AQ", "antarctica"),
    ],
)
def test_transcontinental_convention(code: str, continent: str) -> None:
    assert [n for n in CONTINENTS if code in BUILTIN_GROUPS[n].codes] == [continent]


def test_eu_and_eea_membership() -> None:
    eu, eea = set(BUILTIN_GROUPS["eu"].codes), set(BUILTIN_GROUPS["eea"].codes)
    assert len(eu) == 27
    assert eea == eu | {"IS", "LI", "NO"}
    assert {"HR", "GR", "CY", "DE", "FR"} <= eu
    assert not {"GB", "CH", "TR", "EL", "UK"} & eu  # the UK left on 2020-01-31


def test_sanctions_preset() -> None:
    group = BUILTIN_GROUPS["us-comprehensive-sanctions"]
    assert group.codes == ("CU", "IR", "KP", "UA-09", "UA-14", "UA-40", "UA-43")
    # Syria's program ended on 2025-07-01 (E.O. 14312): not in, and the note says why.
    assert "SY" not in group.codes
    assert "14312" in group.note and "SY" in group.note
    assert "ofac.treasury.gov" in group.source
    assert groups_containing("UA-43") == ("us-comprehensive-sanctions",)


def test_lookup_with_or_without_at() -> None:
    assert builtin_group("@eu") is builtin_group("eu") is BUILTIN_GROUPS["eu"]
    assert builtin_group("nope") is None


def _package_tables() -> dict[str, set[str]]:
    """The groups as country_converter's data file gives them (read directly: its converter
    class needs pandas, and the file is what the tables were generated from)."""
    pytest.importorskip("country_converter")
    text = (
        importlib.resources.files("country_converter")
        .joinpath("country_data.tsv")
        .read_text(encoding="utf-8")
    )
    tables: dict[str, set[str]] = {}
    for row in csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
        # A few ISO2 cells are regular expressions ("^GB$|^UK$"): the first code is the one.
        match = re.fullmatch(r"\^?([A-Z]{2})\$?(\|.*)?", row["ISO2"])
        if match is None or match.group(1) not in iso.countries():
            continue  # former countries (SU, AN) and country_converter's own aggregates
        code = match.group(1)
        for column, name in (("EU", "eu"), ("EEA", "eea")):
            if row[column]:
                tables.setdefault(name, set()).add(code)
        if row["Continent_7"]:
            tables.setdefault(row["Continent_7"].lower().replace(" ", "-"), set()).add(code)
    return tables


def test_generated_tables_match_country_converter() -> None:
    """Regenerate: on a mismatch the message is the _GENERATED table to paste in _groups.py
    (and update COCO / COCO_CHECKED there)."""
    tables = _package_tables()
    ours = {name: set(text.split()) for name, text in _GENERATED.items()}
    if tables != ours:
        lines = [f'    "{n}": "{" ".join(sorted(tables[n]))}",' for n in _GENERATED if n in tables]
        pytest.fail("country_converter differs; new tables:\n" + "\n".join(lines))


@pytest.mark.parametrize(
    ("name", "member", "expected"),
    [
        ("eu", "HR", True),
        ("eu", "GB", False),
        ("eea", "NO", True),
        ("eea", "CH", False),
        ("europe", "RU", True),
        ("asia", "TR", True),
        ("africa", "EG", True),
        ("south-america", "BR", True),
        ("north-america", "MX", True),
        ("oceania", "NZ", True),
    ],
)
def test_membership_spot_checks_against_the_package(name: str, member: str, expected: bool) -> None:
    assert (member in _package_tables()[name]) is expected
    assert (member in BUILTIN_GROUPS[name].codes) is expected


# -- in a policy --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["regions", "except_regions"])
def test_expanded_in_rule_region_lists(key: str) -> None:
    config = {"rules": [{"action": "warn", key: ["@eea", "CH"]}]}
    rule = load_policy(config).rules[0]
    assert getattr(rule, key) == (*BUILTIN_GROUPS["eea"].codes, "CH")


def test_expanded_in_home_regions() -> None:
    config = {
        "accounts": {"store": "memory://"},
        "rules": [{"action": "block", "home_regions": ["@eu"]}],
    }
    assert load_policy(config).rules[0].home_regions == BUILTIN_GROUPS["eu"].codes


def test_home_regions_refuse_a_builtin_group_with_subdivisions() -> None:
    config = {
        "accounts": {"store": "memory://"},
        "rules": [{"action": "block", "home_regions": ["@us-comprehensive-sanctions"]}],
    }
    with pytest.raises(ConfigError, match=r"rules\[0\]\.home_regions\[0\]: .*not a country"):
        load_policy(config)


def test_expanded_inside_a_policy_group() -> None:
    config = {"regions": {"eu-territory": ["@eu", "RE", "GP"]}, **block("@eu-territory")}
    policy = load_policy(config)
    assert policy.regions["eu-territory"] == (*BUILTIN_GROUPS["eu"].codes, "RE", "GP")
    assert policy.rules[0].regions == policy.regions["eu-territory"]


def test_policy_groups_still_cannot_contain_policy_groups() -> None:
    with pytest.raises(ConfigError, match=r"regions\.b\[0\]: groups cannot contain other groups"):
        load_policy({"regions": {"a": ["CU"], "b": ["@a"]}})


def test_unknown_group_inside_a_policy_group_suggests() -> None:
    with pytest.raises(ConfigError, match=r"regions\.mine\[0\]: unknown group '@europa'.*@europe"):
        load_policy({"regions": {"mine": ["@europa"]}})


def test_unknown_group_in_a_rule_suggests_a_builtin() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\]\.regions\[0\]: .*'@oceana'.*'@oceania'"):
        load_policy(block("@oceana"))


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_a_policy_group_may_not_reuse_a_builtin_name(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy({"regions": {name: ["FR"]}})
    assert caught.value.key == f"regions.{name}"
    assert str(caught.value).startswith(f"regions.{name}: '{name}' is the name of a built-in")
    assert f"my-{name}" in str(caught.value)


def test_blocks_by_builtin_group_with_a_city_database() -> None:
    engine = Engine.from_config(
        {"geoip": {"country_db": UA_CITY_DB}, **block("@us-comprehensive-sanctions")}
    )
    for ip in (CRIMEA, DONETSK):
        assert engine.decide(RequestInfo(peer=ip)).action == "block", ip
    assert engine.decide(RequestInfo(peer=KYIV_OBLAST)).action == "allow"

    europe = Engine.from_config(
        {"geoip": {"country_db": UA_CITY_DB}, **block("@europe", except_regions=["@eu"])}
    )
    assert europe.decide(RequestInfo(peer=LONDON)).action == "block"  # GB: Europe, not EU


@pytest.mark.parametrize("country_db", [COUNTRY_DB, None], ids=["country-db", "embedded"])
def test_subdivisions_in_a_builtin_group_need_a_city_database(country_db: str | None) -> None:
    geoip = {"country_db": country_db} if country_db else {}
    error = error_of({"geoip": geoip, **block("CN", "@us-comprehensive-sanctions")})
    assert error.key == "rules[0].regions"
    text = str(error)
    assert re.search(
        r"subdivision code 'UA-\d\d' \(listed by the built-in group "
        r"'@us-comprehensive-sanctions'\) needs a database with subdivisions",
        text,
    )
    assert "City or Enterprise" in text  # the fix
    # Countries-only groups load on any database.
    Engine.from_config({"geoip": geoip, **block("@eea")})


# -- geofence regions -----------------------------------------------------------------------------


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_lists_every_group_with_count_source_and_date(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_here(capsys, "regions")
    assert (status, err) == (0, "")
    for group in BUILTIN_GROUPS.values():
        line = next(x for x in out.splitlines() if x.startswith(f"@{group.name} "))
        assert f"{len(group.codes)} codes" in line and group.checked in line
        assert f"source: {group.source}" in out


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_here(capsys, "regions", "--json")
    assert status == 0
    listed = json.loads(out)
    assert [g["name"] for g in listed] == ["@" + n for n in DESIGN_NAMES]
    assert {"name", "title", "count", "source", "checked", "note"} <= set(listed[0])


@pytest.mark.parametrize("name", ["us-comprehensive-sanctions", "@us-comprehensive-sanctions"])
def test_shows_one_group(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run_here(capsys, "regions", name)
    assert (status, err) == (0, "")
    assert out.startswith("@us-comprehensive-sanctions: ")
    assert "checked: 2026-12-03" in out and "ofac.treasury.gov" in out
    assert re.search(r"^CU +Cuba$", out, re.M)
    assert re.search(r"^UA-40 +Sevastopol$", out, re.M)


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_here(capsys, "regions", "@eu", "--json")
    assert status == 0
    doc = json.loads(out)
    assert doc["name"] == "@eu" and doc["count"] == 27
    assert {"code": "FR", "name": "France"} in doc["codes"]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("ue", "eu"), ("sanctions", "us-comprehensive-sanctions"), ("europa", "europe")],
)
def test_unknown_name_exits_2_with_a_suggestion(
    capsys: pytest.CaptureFixture[str], name: str, suggestion: str
) -> None:
    status, out, err = run_here(capsys, "regions", name)
    assert (status, out) == (2, "")
    assert f"did you mean '{suggestion}'?" in err
    assert err.startswith("geofence: regions: no built-in group") and "Traceback" not in err


def test_as_a_user_runs_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geofence", "regions", "eu"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert re.search(r"^DE +Germany$", result.stdout, re.M)


def test_in_a_closed_pipe_it_ends_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "geofence", "regions", "europe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.read(10)
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode in (0, 141)  # done before the reader left, or SIGPIPE's status
