"""One ISO 3166 list: what a policy may name is exactly what a database record can be.

Kosovo (XK) is a country in the config *and* in records, so a rule on it matches; pseudo-codes
in records (MaxMind's legacy A1/A2/O1, the RIRs' EU/AP, placeholders) are a record without a
country, never a database error (DESIGN "Regions").
"""

from __future__ import annotations

import itertools
import json
import string
import time
from pathlib import Path
from typing import Any

import pytest
from tests_support import reader_modes

import geofence
from geofence import _iso3166 as iso
from geofence._errors import DatabaseError
from geofence.clientip._addresses import parse_ip
from geofence.config import GeoIPPolicy
from geofence.geoip import (
    NO_COUNTRY,
    EmbeddedCountryDB,
    GeoRecord,
    RecordDecoder,
    iso_countries,
    open_country_db,
)
from geofence.rules import RegionCodeError, check_code, is_country, region_name

FIXTURES = Path(__file__).parent.parent / "data" / "fixtures"
PSEUDO_DB = str(FIXTURES / "GeoIP2-City-pseudo-codes.mmdb")
EXPECTED: dict[str, list[Any]] = json.loads((FIXTURES / "fixtures.json").read_text())[
    "GeoIP2-City-pseudo-codes.mmdb"
]["found"]
MODES = reader_modes()

KOSOVO_V4 = "46.99.1.1"
KOSOVO_V6 = "2a0d:5600::1"
SERBIA = "109.92.1.1"
PSEUDO = {
    "A1": "41.1.1.1",
    "A2": "41.2.1.1",
    "O1": "41.3.1.1",
    "EU": "41.4.1.1",
    "AP": "41.5.1.1",
    "XX": "41.6.1.1",
    "ZZ": "41.7.1.1",
    "T1": "41.8.1.1",
}
PSEUDO_V6 = ["2c0f:f000::1", "2c0f:f100::1"]  # A1, A2
NO_COUNTRY_IPS = [*PSEUDO.values(), *PSEUDO_V6]


def engine(mode: str = "auto", **config: Any) -> geofence.Engine:
    geoip = {"country_db": PSEUDO_DB, "reader": mode, "reload_interval": 0}
    return geofence.Engine.from_config({"geoip": geoip, **config})


def decide(e: geofence.Engine, ip: str) -> geofence.Decision:
    return e.decide(geofence.RequestInfo(peer=ip))


# -- one list --------------------------------------------------------------------------------


def country_record(code: str) -> Any:
    return {"country": {"iso_code": code}}


def test_config_and_records_agree_on_every_two_letter_code() -> None:
    decoder = RecordDecoder()
    letters = string.ascii_uppercase
    for first, second in itertools.product(letters, letters + string.digits):
        code = first + second
        try:
            check_code(code)
        except RegionCodeError:
            accepted = False
        else:
            accepted = True
        record = decoder.country(country_record(code))
        assert record.found, code
        assert (record.country == code) is accepted, code
        assert (record is NO_COUNTRY) is not accepted, code
        assert is_country(code) is accepted, code


def test_every_list_is_the_one_list() -> None:
    assert iso_countries() is iso.countries()
    assert "XK" in iso.countries()
    assert {"EU", "AP", "XX", "ZZ", "A1", "A2", "O1", "T1", "UK"}.isdisjoint(iso.countries())
    assert len(iso.countries()) == 250  # 249 ISO 3166-1 codes and XK


def test_kosovo_is_a_country_in_the_config() -> None:
    assert check_code("XK") == "XK"
    assert region_name("XK") == "Kosovo"
    policy = geofence.load_policy({"rules": [{"action": "block", "regions": ["XK"]}]})
    assert policy.rules[0].regions == ("XK",)
    with pytest.raises(geofence.ConfigError, match=r"did you mean 'XK'\?"):
        geofence.load_policy({"rules": [{"action": "block", "regions": ["XKX"]}]})


def test_kosovo_in_the_embedded_default() -> None:
    db = EmbeddedCountryDB(lambda ip: "XK" if ip == "46.99.1.1" else "AP")
    assert db.lookup("46.99.1.1") == GeoRecord(True, "XK", ())
    assert db.lookup("1.1.1.1") is NO_COUNTRY


@pytest.mark.parametrize("code", ["A1", "A2", "O1", "T1", "EU", "AP", "XX", "ZZ", "Q1"])
def test_pseudo_codes_are_records_without_a_country(code: str) -> None:
    assert RecordDecoder().country(country_record(code)) is NO_COUNTRY


@pytest.mark.parametrize("code", ["a1", "1A", "11", "A", "AAA", "A-", "Ä1", "A１"])
def test_codes_of_no_known_shape_are_still_database_errors(code: str) -> None:
    with pytest.raises(DatabaseError, match="malformed record"):
        RecordDecoder().country(country_record(code))


# -- the fixture database ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fixture_answers(mode: str) -> None:
    db = open_country_db(
        GeoIPPolicy(country_db=PSEUDO_DB, reader=mode, reload_interval=0), time.monotonic
    )
    assert EXPECTED[KOSOVO_V4] == ["XK", []]
    assert set(NO_COUNTRY_IPS) | {KOSOVO_V4, KOSOVO_V6, SERBIA} == set(EXPECTED)
    for ip, (code, subdivisions) in EXPECTED.items():
        want = GeoRecord(True, code, tuple(subdivisions))
        parsed = parse_ip(ip)
        assert parsed is not None
        for _ in range(2):  # the first answer and the cached one
            assert db.lookup(ip) == want, ip
            assert db.find(parsed) == want, ip


# -- through the engine ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_rule_on_kosovo_matches_a_kosovo_record(mode: str) -> None:
    e = engine(mode, rules=[{"name": "xk", "action": "block", "regions": ["XK"]}])
    for ip in (KOSOVO_V4, KOSOVO_V6):
        d = decide(e, ip)
        assert (d.action, d.reason, d.rule, d.country, d.status) == (
            "block",
            "rule",
            "xk",
            "XK",
            451,
        )
    # Serbia is not Kosovo, and a client without a country is neither.
    d = decide(e, SERBIA)
    assert (d.action, d.reason, d.country, d.subdivisions) == ("allow", "default", "RS", ("RS-00",))
    assert decide(e, PSEUDO["A1"]).reason == "no_country"


@pytest.mark.parametrize("mode", MODES)
def test_unknown_does_not_match_kosovo(mode: str) -> None:
    e = engine(mode, rules=[{"name": "unknown", "action": "block", "regions": ["unknown"]}])
    for ip in (KOSOVO_V4, KOSOVO_V6):
        d = decide(e, ip)
        assert (d.action, d.reason, d.rule, d.country) == ("allow", "default", None, "XK")
    for ip in NO_COUNTRY_IPS:
        d = decide(e, ip)
        assert (d.action, d.reason, d.rule, d.country) == ("block", "rule", "unknown", None), ip


def test_kosovo_against_neighbours_any_and_exceptions() -> None:
    e = engine(
        rules=[
            {"name": "serbia", "action": "block", "regions": ["RS"]},
            {"name": "known", "action": "warn", "regions": ["*"], "except_regions": ["GB"]},
        ]
    )
    assert decide(e, SERBIA).rule == "serbia"
    d = decide(e, KOSOVO_V4)
    assert (d.action, d.rule, d.country) == ("warn", "known", "XK")
    e = engine(
        rules=[
            {"name": "all-but-xk", "action": "block", "regions": ["*"], "except_regions": ["XK"]}
        ]
    )
    assert decide(e, KOSOVO_V4).action == "allow"
    assert decide(e, SERBIA).action == "block"


@pytest.mark.parametrize("mode", MODES)
def test_pseudo_codes_are_no_country_not_a_database_error(mode: str) -> None:
    # on_error = "block" turns a database error into a 503 for the client: a legacy A1/A2
    # record is a client without a country, never that.
    e = engine(mode, on_error="block")
    for ip in NO_COUNTRY_IPS:
        d = decide(e, ip)
        assert (d.action, d.reason, d.country, d.status) == ("allow", "no_country", None, None), ip
    e = engine(mode, on_error="block", default="block")
    for ip in NO_COUNTRY_IPS:
        d = decide(e, ip)
        assert (d.action, d.reason, d.status) == ("block", "no_country", 451), ip
