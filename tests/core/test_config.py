"""Configuration loading: every bad config names its key path and the fix; good ones normalise."""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

import pytest

from geofence import ConfigError, Engine, RequestInfo, load_policy
from geofence.config import DEFAULT_MESSAGE, ClientIPPolicy, GeoIPPolicy, Policy, RulePolicy

UTC = timezone.utc
ANON = {"anonymous_db": "/data/anon.mmdb"}


def rule(**fields: Any) -> dict[str, Any]:
    return {"rules": [{"action": "block", "regions": ["CN"], **fields}]}


def regions(*codes: Any) -> dict[str, Any]:
    return {"rules": [{"action": "block", "regions": list(codes)}]}


def trusted(*networks: Any) -> dict[str, Any]:
    return {"client_ip": {"trusted_proxies": list(networks)}}


# (config, expected key path, fragment of the reason)
BAD: list[tuple[dict[str, Any], str, str]] = [
    # unknown keys, with hints
    (
        {"rules": [{"action": "block", "region": ["CN"]}]},
        "rules[0].region",
        "unknown key (did you mean 'regions'?)",
    ),
    ({"Mode": "off"}, "Mode", "did you mean 'mode'?"),
    ({"mdoe": "off"}, "mdoe", "did you mean 'mode'?"),
    ({"trusted_proxies": ["10.0.0.0/8"]}, "trusted_proxies", "belongs in [client_ip]"),
    ({"country_db": "x.mmdb"}, "country_db", "belongs in [geoip]"),
    ({"action": "block"}, "action", "belongs in a [[rules]] entry"),
    ({"client_ip": {"proxies": ["10.0.0.0/8"]}}, "client_ip.proxies", "trusted_proxies"),
    ({"geoip": {"city_db": "x.mmdb"}}, "geoip.city_db", "did you mean 'country_db'?"),
    ({"exempt": {"path": ["/healthz"]}}, "exempt.path", "did you mean 'paths'?"),
    ({"exempt": {"zzz": 1}}, "exempt.zzz", "accepts: accounts, ips, paths"),
    ({1: "x"}, "1", "keys must be strings"),  # type: ignore[dict-item]
    # wrong types
    (
        {"rules": [{"action": "block", "regions": "CN"}]},
        "rules[0].regions",
        'expected a list of region codes, e.g. ["CN"], got a string',
    ),
    ({"client_ip": {"hops": True}}, "client_ip.hops", "got a boolean"),
    ({"client_ip": {"hops": 1.0}}, "client_ip.hops", "expected a whole number"),
    ({"allow_private": "yes"}, "allow_private", "expected true or false"),
    ({"allow_private": 1}, "allow_private", "expected true or false, got an integer"),
    ({"rules": {"action": "block"}}, "rules", "[[rules]] (double brackets)"),
    ({"rules": ["CN"]}, "rules[0]", "expected a table"),
    ({"client_ip": ["10.0.0.0/8"]}, "client_ip", "expected a table"),
    ({"geoip": "x.mmdb"}, "geoip", "expected a table"),
    ({"exempt": ["/healthz"]}, "exempt", "expected a table"),
    ({"regions": ["CN"]}, "regions", "put a rule's region list in its [[rules]] entry"),
    ({"regions": "CN"}, "regions", "expected a table of named groups"),
    (rule(regions=[1]), "rules[0].regions[0]", 'expected a region code string, e.g. "CN"'),
    (rule(status="451"), "rules[0].status", "got a string"),
    (rule(status=True), "rules[0].status", "got a boolean"),
    (rule(name=5), "rules[0].name", "expected a string"),
    (rule(paths="/v1/*"), "rules[0].paths", 'write ["/v1/*"]'),
    (rule(paths=[None]), "rules[0].paths[0]", "expected a path glob string"),
    (rule(methods="GET"), "rules[0].methods", "expected a list of HTTP methods"),
    (rule(methods=[1]), "rules[0].methods[0]", "expected an HTTP method string"),
    (rule(anonymizers="tor"), "rules[0].anonymizers", "expected a list of network types"),
    ({"message": 5}, "message", "expected a string"),
    ({"info_url": 5}, "info_url", "expected an absolute http(s) URL"),
    # enums
    ({"mode": "enforcing"}, "mode", "did you mean 'enforce'?"),
    ({"mode": "ENFORCE"}, "mode", "did you mean 'enforce'?"),
    ({"mode": True}, "mode", 'expected one of "enforce", "report", "off"'),
    ({"default": "deny"}, "default", '"allow", "block"'),
    ({"on_error": "fail"}, "on_error", '"allow", "block"'),
    ({"rules": [{"action": "deny", "regions": ["CN"]}]}, "rules[0].action", '"block", "warn"'),
    (
        {"rules": [{"action": "blocks", "regions": ["CN"]}]},
        "rules[0].action",
        "did you mean 'block'?",
    ),
    ({"rules": [{"regions": ["CN"]}]}, "rules[0].action", "is missing"),
    (rule(mode="off"), "rules[0].mode", '"enforce", "report"'),
    (rule(status=404), "rules[0].status", "use 451"),
    (
        {"rules": [{"action": "warn", "regions": ["CN"], "status": 403}]},
        "rules[0].status",
        "only applies to block rules",
    ),
    # regions
    (regions("UK"), "rules[0].regions[0]", "'UK' is not an ISO 3166-1 code (did you mean 'GB'?)"),
    (regions("EL"), "rules[0].regions[0]", "did you mean 'GR'?"),
    (regions("CN", "cn"), "rules[0].regions[1]", "did you mean 'CN'?"),
    (regions("Russia"), "rules[0].regions[0]", "did you mean 'RU'?"),
    (
        regions("CHN"),
        "rules[0].regions[0]",
        "alpha-3 code; geofence uses alpha-2 codes (did you mean 'CN'?)",
    ),
    (regions("XX"), "rules[0].regions[0]", "is not a country"),
    (regions("ZZ"), "rules[0].regions[0]", "use 'unknown'"),
    (regions("T1"), "rules[0].regions[0]", "Tor"),
    (regions("EU"), "rules[0].regions[0]", "European Union"),
    (regions("AP"), "rules[0].regions[0]", "Asia/Pacific"),
    (regions("A1"), "rules[0].regions[0]", "anonymous proxies"),
    (regions("A2"), "rules[0].regions[0]", "satellite"),
    (regions("O1"), "rules[0].regions[0]", "other country"),
    (regions("\u0421N"), "rules[0].regions[0]", "contains a non-ASCII character"),
    (regions("UA-99"), "rules[0].regions[0]", "not an ISO 3166-2 subdivision of UA"),
    (regions("GB-ENGLAND"), "rules[0].regions[0]", "did you mean 'GB-ENG'?"),
    (regions("ZX"), "rules[0].regions[0]", "not an ISO 3166-1 alpha-2"),
    (regions("CN-HK"), "rules[0].regions[0]", "write 'HK'"),
    (regions(""), "rules[0].regions[0]", "empty region code"),
    (regions("@sanctiond"), "rules[0].regions[0]", "no groups are defined"),
    (
        {"regions": {"sanctioned": ["CU"]}, **regions("@sanctiond")},
        "rules[0].regions[0]",
        "did you mean '@sanctioned'?); known groups: @sanctioned",
    ),
    ({"regions": {"sanctioned": ["CU", "UK"]}}, "regions.sanctioned[1]", "did you mean 'GB'?"),
    ({"regions": {"a": ["CU"], "b": ["@a"]}}, "regions.b[0]", "cannot contain other groups"),
    ({"regions": {"Sanctioned": ["CU"]}}, "regions.Sanctioned", "e.g. 'sanctioned'"),
    ({"regions": {"@eu": ["FR"]}}, "regions.@eu", "without '@'"),
    ({"regions": {"eu": []}}, "regions.eu", "is empty"),
    ({"regions": {"eu": "FR"}}, "regions.eu", "got a string"),
    (rule(except_regions=["UK"]), "rules[0].except_regions[0]", "did you mean 'GB'?"),
    # rule conditions
    (rule(anonymizers=["tor"]), "rules[0].anonymizers", "needs geoip.anonymous_db"),
    (
        {"geoip": ANON, **rule(anonymizers=["tors"])},
        "rules[0].anonymizers[0]",
        "did you mean 'tor'?",
    ),
    ({"geoip": ANON, **rule(anonymizers=["proxy"])}, "rules[0].anonymizers[0]", '"public_proxy"'),
    (rule(paths=["v1/*"]), "rules[0].paths[0]", "must start with '/'"),
    (rule(paths=["/v1/["]), "rules[0].paths[0]", "unclosed '['"),
    ({"exempt": {"paths": ["/static/]"]}}, "exempt.paths[0]", "']' without '['"),
    (rule(methods=["GE T"]), "rules[0].methods[0]", "is not an HTTP method"),
    (rule(methods=["*"]), "rules[0].methods[0]", "omit methods"),
    ({"rules": [{"action": "block"}]}, "rules[0]", "would block every request"),
    ({"rules": [{"action": "block", "regions": []}]}, "rules[0]", 'default = "block"'),
    (
        {
            "rules": [
                {"name": "a", "action": "block", "regions": ["CN"]},
                {"name": "a", "action": "block", "regions": ["RU"]},
            ]
        },
        "rules[1].name",
        "'a' is already the name of rules[0]",
    ),
    (
        {
            "rules": [
                {"action": "block", "regions": ["CN"]},
                {"name": "rules[0]", "action": "block", "regions": ["RU"]},
            ]
        },
        "rules[1].name",
        "must be unique",
    ),
    (rule(name=""), "rules[0].name", "is empty"),
    (rule(name="a\nb"), "rules[0].name", "control character"),
    # times
    (rule(enforce_from="2024-07-09T00:00:00"), "rules[0].enforce_from", 'add "Z" for UTC'),
    (rule(enforce_from="2024-07-09"), "rules[0].enforce_from", "date without a time"),
    (rule(enforce_from="09/07/2024"), "rules[0].enforce_from", "not an ISO 8601 time"),
    (rule(enforce_from="2024-13-01T00:00:00Z"), "rules[0].enforce_from", "not a valid time"),
    (rule(enforce_from="2024-07-09T00:00:00+25:00"), "rules[0].enforce_from", "impossible UTC"),
    (rule(enforce_from=datetime(2024, 7, 9)), "rules[0].enforce_from", "has no time zone"),
    (rule(enforce_from=date(2024, 7, 9)), "rules[0].enforce_from", "date without a time"),
    (rule(enforce_from=time(7, 0)), "rules[0].enforce_from", "time of day without a date"),
    (rule(enforce_from=1720483200), "rules[0].enforce_from", "expected an ISO 8601 time"),
    (rule(enforce_from=None), "rules[0].enforce_from", "expected an ISO 8601 time"),
    (rule(warn_from="2024-06-25T00:00:00Z"), "rules[0].warn_from", "needs enforce_from"),
    (
        rule(warn_from="2024-07-09T00:00:00Z", enforce_from="2024-07-09T02:00:00+02:00"),
        "rules[0].warn_from",
        "must be earlier than enforce_from",
    ),
    (
        rule(warn_from="2024-07-10T00:00:00Z", enforce_from="2024-07-09T00:00:00Z"),
        "rules[0].warn_from",
        "must be earlier",
    ),
    # client_ip
    (trusted("10.0.0.1/8"), "client_ip.trusted_proxies[0]", "did you mean '10.0.0.0/8'?"),
    (
        trusted("10.0.0.0/8", "2001:db8::1/32"),
        "client_ip.trusted_proxies[1]",
        "did you mean '2001:db8::/32'?",
    ),
    (trusted("0.0.0.0/0"), "client_ip.trusted_proxies[0]", "trusts every address; use hops = N"),
    (trusted("::/0"), "client_ip.trusted_proxies[0]", "trusts every address"),
    (trusted("::ffff:0:0/96"), "client_ip.trusted_proxies[0]", "trusts every IPv4 address"),
    (trusted("::ffff:0.0.0.0/96"), "client_ip.trusted_proxies[0]", "use hops = N"),
    (trusted("2000::/3"), "client_ip.trusted_proxies[0]", "trusts every IPv4 address"),
    (trusted("64:ff9b::/96"), "client_ip.trusted_proxies[0]", "NAT64"),
    (trusted("2001::/32"), "client_ip.trusted_proxies[0]", "Teredo"),
    (trusted("2001:0:abcd::/48"), "client_ip.trusted_proxies[0]", "list IPv4 networks"),
    (trusted("2002:a00:1:1::/64"), "client_ip.trusted_proxies[0]", "write '10.0.0.1'"),
    (trusted("10.0.0.0/33"), "client_ip.trusted_proxies[0]", "not an IP address or CIDR"),
    (trusted("proxy.internal"), "client_ip.trusted_proxies[0]", "not an IP address or CIDR"),
    (trusted("010.0.0.1"), "client_ip.trusted_proxies[0]", "not an IP address or CIDR"),
    (trusted(" 10.0.0.1"), "client_ip.trusted_proxies[0]", "remove the spaces"),
    (trusted("fe80::1%eth0"), "client_ip.trusted_proxies[0]", "zone ids"),
    (trusted(10), "client_ip.trusted_proxies[0]", "expected an IP address or CIDR network"),
    (
        {"client_ip": {"trusted_proxies": "10.0.0.0/8"}},
        "client_ip.trusted_proxies",
        'write ["10.0.0.0/8"]',
    ),
    (
        {"client_ip": {"header": "X-Forwarded-Fro"}},
        "client_ip.header",
        "did you mean 'x-forwarded-for'?",
    ),
    (
        {"client_ip": {"hops": 1, "header": "x-client-ip"}},
        "client_ip.header",
        '"x-forwarded-for", "forwarded"',
    ),
    ({"client_ip": {"header": 1}}, "client_ip.header", "expected a header name"),
    ({"client_ip": {"header": "x-real-ip"}}, "client_ip.header", "only read from trusted proxies"),
    ({"client_ip": {"hops": 0}}, "client_ip.hops", "at least 1"),
    ({"client_ip": {"hops": 1000}}, "client_ip.hops", "at most 32"),
    (
        {"client_ip": {"hops": 1, "trusted_proxies": ["10.0.0.0/8"]}},
        "client_ip.hops",
        "cannot be combined with client_ip.trusted_proxies",
    ),
    ({"client_ip": {"hops": 2, "header": "x-real-ip"}}, "client_ip.hops", "must be 1"),
    ({"client_ip": {"hops": 2, "header": "CF-Connecting-IP"}}, "client_ip.hops", "must be 1"),
    ({"exempt": {"ips": ["0.0.0.0/0"]}}, "exempt.ips[0]", 'mode = "off"'),
    ({"exempt": {"ips": ["::/0"]}}, "exempt.ips[0]", 'mode = "off"'),
    ({"exempt": {"ips": ["203.0.113.1/24"]}}, "exempt.ips[0]", "did you mean '203.0.113.0/24'?"),
    # geoip
    ({"geoip": {"country_db": ""}}, "geoip.country_db", "omit it to use the embedded default"),
    ({"geoip": {"anonymous_db": "  "}}, "geoip.anonymous_db", "is empty"),
    ({"geoip": {"country_db": 5}}, "geoip.country_db", "expected a file path"),
    ({"geoip": {"country_db": "a\x00b"}}, "geoip.country_db", "NUL"),
    ({"geoip": {"reload_interval": -1}}, "geoip.reload_interval", ">= 0"),
    ({"geoip": {"reload_interval": float("nan")}}, "geoip.reload_interval", "not allowed"),
    ({"geoip": {"reload_interval": float("inf")}}, "geoip.reload_interval", "not allowed"),
    ({"geoip": {"reload_interval": True}}, "geoip.reload_interval", "got a boolean"),
    ({"geoip": {"reload_interval": "60"}}, "geoip.reload_interval", "expected a number"),
    ({"geoip": {"reader": "mmap-ext"}}, "geoip.reader", "did you mean 'mmap_ext'?"),
    # message, info_url
    ({"message": ""}, "message", "is empty"),
    ({"message": "x" * 1001}, "message", "under 1000"),
    ({"message": "blocked\r\nSet-Cookie: a=b"}, "message", "control character '\\r'"),
    ({"message": "a\x00b"}, "message", "control character"),
    ({"message": "a\x1b[31mb"}, "message", "control character"),
    ({"message": "a\u2028b"}, "message", "control character"),
    ({"info_url": "example.com/countries"}, "info_url", "not an absolute http(s) URL"),
    ({"info_url": "/countries"}, "info_url", "not an absolute http(s) URL"),
    ({"info_url": "javascript:alert(1)"}, "info_url", "not an absolute http(s) URL"),
    ({"info_url": "ftp://example.com/x"}, "info_url", "not an absolute http(s) URL"),
    ({"info_url": "https://"}, "info_url", "not an absolute http(s) URL"),
    ({"info_url": 'https://example.com/"><script>'}, "info_url", "percent-encode"),
    ({"info_url": "https://example.com/a>; rel=x"}, "info_url", "contains"),
    ({"info_url": "https://example.com/a b"}, "info_url", "whitespace"),
    ({"info_url": "https://example.com/\r\nX: y"}, "info_url", "control character"),
    ({"info_url": "https://example.com/caf\u00e9"}, "info_url", "non-ASCII"),
    ({"info_url": "https://example.com:99999/"}, "info_url", "invalid port"),
    ({"info_url": "https://example.com/" + "a" * 2001}, "info_url", "under 2000"),
]


@pytest.mark.parametrize(
    ("config", "key", "fragment"), BAD, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD)]
)
def test_bad_config(config: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(config)
    error = caught.value
    assert error.key == key, str(error)
    assert fragment in error.reason, str(error)
    assert str(error) == f"{key}: {error.reason}"
    assert isinstance(error, ValueError)


def test_first_error_follows_schema_order() -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy({"mode": "x", "rules": [{"action": "nope"}]})
    assert caught.value.key == "mode"


def test_not_a_mapping_or_path() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_policy(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_policy(["mode"])  # type: ignore[arg-type]


# -- good configs -------------------------------------------------------------------------------


def test_empty_config_gives_defaults() -> None:
    policy = load_policy({})
    for f in fields(Policy):  # every field has its declared default
        default = f.default if f.default_factory is MISSING else f.default_factory()
        assert getattr(policy, f.name) == default, f.name
    assert policy.mode == "enforce" and policy.default == "allow" and policy.on_error == "allow"
    assert policy.allow_private is True and policy.message == DEFAULT_MESSAGE
    assert policy.client_ip == ClientIPPolicy()
    assert policy.geoip == GeoIPPolicy()
    assert dict(policy.regions) == {} and policy.rules == ()


FULL: dict[str, Any] = {
    "mode": "report",
    "default": "block",
    "allow_private": False,
    "on_error": "block",
    "info_url": "https://example.com/supported-countries?x=1#y",
    "message": "Nicht verfügbar in Ihrer Region.",
    "client_ip": {
        "trusted_proxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:172.16.0.0/108"],
        "header": "X-Forwarded-For",
    },
    "geoip": {
        "country_db": "/data/City.mmdb",
        "anonymous_db": "/data/Anon.mmdb",
        "reload_interval": 0,
        "reader": "memory",
    },
    "regions": {
        "sanctioned": ["CU", "IR", "KP", "SY", "UA-43", "UA-14", "UA-09", "UA-40"],
        "nordic_2": ["SE", "NO", "*", "unknown"],
    },
    "rules": [
        {
            "name": "unsupported-regions",
            "action": "block",
            "regions": ["CN", "RU", "@sanctioned", "CN", "XK"],
            "except_regions": ["GB-ENG"],
            "anonymizers": ["vpn", "tor", "vpn"],
            "paths": ["/v1/*", "*"],
            "methods": ["get", "Post"],
            "warn_from": "2024-06-25T00:00:00Z",
            "enforce_from": "2024-07-09T02:00:00+02:00",
            "status": 403,
            "mode": "report",
        },
        {"action": "allow", "regions": ["US-WA"], "enforce_from": "2024-07-09T00:00:00z"},
        {"action": "warn", "regions": ["@nordic_2"]},
    ],
    "exempt": {
        "ips": ["203.0.113.0/24", "::ffff:198.51.100.1"],
        "paths": ["/healthz", "/static/*"],
    },
}


def test_full_config_normalised() -> None:
    p = load_policy(FULL)
    assert (p.mode, p.default, p.allow_private, p.on_error) == ("report", "block", False, "block")
    assert p.info_url == FULL["info_url"] and p.message == FULL["message"]
    assert p.client_ip.trusted_proxies == (
        IPv4Network("10.0.0.0/8"),
        IPv4Network("192.0.2.7/32"),
        IPv6Network("2001:db8::/32"),
        IPv4Network("172.16.0.0/12"),  # IPv4-mapped network rewritten as IPv4
    )
    assert p.client_ip.header == "x-forwarded-for" and p.client_ip.hops is None
    assert p.geoip == GeoIPPolicy("/data/City.mmdb", "/data/Anon.mmdb", 0.0, "memory")
    assert p.regions["sanctioned"][-1] == "UA-40"
    first, second, third = p.rules
    assert first.name == "unsupported-regions" and first.key == "rules[0]"
    assert first.regions == (
        "CN",
        "RU",
        "CU",
        "IR",
        "KP",
        "SY",
        "UA-43",
        "UA-14",
        "UA-09",
        "UA-40",
        "XK",
    )
    assert first.except_regions == ("GB-ENG",)
    assert first.anonymizers == ("vpn", "tor")
    assert first.paths == ("/v1/*", "*")
    assert first.methods == ("GET", "POST")
    assert first.warn_from == datetime(2024, 6, 25, tzinfo=UTC)
    assert first.enforce_from == datetime(2024, 7, 9, tzinfo=UTC)
    assert first.enforce_from.utcoffset() == timedelta(0)
    assert (first.status, first.mode, first.action) == (403, "report", "block")
    assert (second.name, second.key, second.action) == ("rules[1]", "rules[1]", "allow")
    assert second.enforce_from == datetime(2024, 7, 9, tzinfo=UTC) and second.warn_from is None
    assert (second.status, second.mode) == (451, "enforce")
    assert third.regions == ("SE", "NO", "*", "unknown")
    assert p.exempt_ips == (IPv4Network("203.0.113.0/24"), IPv4Network("198.51.100.1/32"))
    assert p.exempt_paths == ("/healthz", "/static/*")


def test_policy_is_immutable() -> None:
    p = load_policy(FULL)
    with pytest.raises(TypeError):
        p.regions["x"] = ("CN",)  # type: ignore[index]


def test_embedded_ipv4_networks_become_ipv4() -> None:
    p = load_policy(
        trusted("::ffff:10.1.0.0/112", "2002:c000:0200::/40", "64:ff9b::198.51.100.0/120")
    )
    assert p.client_ip.trusted_proxies == (
        IPv4Network("10.1.0.0/16"),
        IPv4Network("192.0.2.0/24"),
        IPv4Network("198.51.100.0/24"),
    )


def test_networks_deduplicated_after_normalising() -> None:
    p = load_policy(trusted("10.0.0.0/8", "::ffff:10.0.0.0/104", "10.0.0.0/255.0.0.0"))
    assert p.client_ip.trusted_proxies == (IPv4Network("10.0.0.0/8"),)


def test_hops_and_headers() -> None:
    p = load_policy({"client_ip": {"hops": 2, "header": "Forwarded"}})
    assert (p.client_ip.hops, p.client_ip.header, p.client_ip.trusted_proxies) == (
        2,
        "forwarded",
        (),
    )
    p = load_policy({"client_ip": {"hops": 1, "header": "CF-Connecting-IP"}})
    assert p.client_ip.header == "cf-connecting-ip"
    p = load_policy({"client_ip": {"trusted_proxies": ["10.0.0.0/8"], "header": "x-real-ip"}})
    assert p.client_ip.header == "x-real-ip"


def test_none_means_unset_for_optional_values() -> None:
    p = load_policy(
        {
            "info_url": None,
            "geoip": {"country_db": None, "anonymous_db": None},
            "client_ip": {"hops": None},
            **rule(name=None),
        }
    )
    assert p.info_url is None and p.geoip.country_db is None and p.client_ip.hops is None
    assert p.rules[0].name == "rules[0]"


def test_aware_python_datetimes_are_converted_to_utc() -> None:
    tz = timezone(timedelta(hours=-7))
    p = load_policy(
        rule(
            warn_from=datetime(2024, 6, 24, 17, tzinfo=tz),
            enforce_from="2024-07-09 00:00:00.5+0530",
        )
    )
    assert p.rules[0].warn_from == datetime(2024, 6, 25, tzinfo=UTC)
    assert p.rules[0].warn_from.tzinfo is UTC
    assert p.rules[0].enforce_from == datetime(2024, 7, 8, 18, 30, 0, 500000, tzinfo=UTC)


def test_allow_and_warn_rules_without_conditions_are_fine() -> None:
    p = load_policy(
        {
            "rules": [
                {
                    "action": "warn",
                    "warn_from": "2024-01-01T00:00:00Z",
                    "enforce_from": "2024-02-01T00:00:00Z",
                },
                {"action": "allow"},
            ]
        }
    )
    assert [r.action for r in p.rules] == ["warn", "allow"]


def test_block_rule_with_only_except_regions_is_allowed() -> None:
    p = load_policy({"rules": [{"action": "block", "except_regions": ["US"]}]})
    assert p.rules[0].regions == () and p.rules[0].except_regions == ("US",)


def test_tuples_accepted_for_lists() -> None:
    p = load_policy({"rules": ({"action": "block", "regions": ("CN",)},)})
    assert p.rules[0].regions == ("CN",)


def test_dict_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    p = load_policy({"geoip": {"country_db": "db/City.mmdb", "anonymous_db": "~/Anon.mmdb"}})
    assert p.geoip.country_db == str(tmp_path / "db" / "City.mmdb")
    assert p.geoip.anonymous_db == str(tmp_path / "home" / "Anon.mmdb")
    p = load_policy({"geoip": {"country_db": tmp_path / "x.mmdb"}})
    assert p.geoip.country_db == str(tmp_path / "x.mmdb")


def test_policy_validation_does_not_open_databases() -> None:
    p = load_policy({"geoip": {"country_db": "/nonexistent/City.mmdb"}})
    assert p.geoip.country_db == "/nonexistent/City.mmdb"


# -- files --------------------------------------------------------------------------------------

TOML = """
mode = "enforce"
info_url = "https://example.com/supported-countries"

[client_ip]
trusted_proxies = ["10.0.0.0/8"]

[geoip]
country_db = "data/City.mmdb"
reload_interval = 30.5

[regions]
sanctioned = ["CU", "IR"]

[[rules]]
name = "unsupported-regions"
action = "block"
regions = ["CN", "@sanctioned"]
warn_from = 2024-06-25T00:00:00Z
enforce_from = 2024-07-09T02:00:00+02:00

[[rules]]
action = "warn"
regions = ["RU"]
enforce_from = "2024-07-09T00:00:00Z"

[exempt]
paths = ["/healthz"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "geofence.toml", TOML)
    p = load_policy(path)
    assert p.rules[0].regions == ("CN", "CU", "IR")
    assert p.rules[0].warn_from == datetime(2024, 6, 25, tzinfo=UTC)
    assert p.rules[0].enforce_from == datetime(2024, 7, 9, tzinfo=UTC)
    assert p.rules[1].enforce_from == datetime(2024, 7, 9, tzinfo=UTC)
    assert p.geoip.reload_interval == 30.5
    # Relative database paths are taken from the config file's directory, not the CWD.
    assert p.geoip.country_db == str(tmp_path / "data" / "City.mmdb")
    assert load_policy(str(path)) == p


def test_json_file(tmp_path: Path) -> None:
    config = {**FULL, "geoip": {"country_db": "City.mmdb"}, "rules": FULL["rules"][1:]}
    path = write(tmp_path, "geofence.JSON", json.dumps(config))
    p = load_policy(path)
    assert p.geoip.country_db == str(tmp_path / "City.mmdb")
    assert p.rules[0].enforce_from == datetime(2024, 7, 9, tzinfo=UTC)
    assert p.client_ip.trusted_proxies[-1] == IPv4Network("172.16.0.0/12")


def test_file_with_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_bytes(b"\xef\xbb\xbfmode = 'off'\n")
    assert load_policy(path).mode == "off"


def test_home_in_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "g.json", '{"mode": "report"}')
    assert load_policy("~/g.json").mode == "report"


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("g.toml", 'mode = "enforce"\nrules = [\n  {action = }\n]\n', "line 3, column"),
        ("g.toml", "mode = \n", "line 1"),
        ("g.toml", 'mode = "a"\nmode = "b"\n', "TOML syntax error"),
        ("g.toml", '[[rules]]\naction = "block"\nregions = ["CN"', "end of file"),
        ("g.json", '{"mode": "off",}', "line 1, column"),
        ("g.json", '{\n"mode": "off",\n"mode": "report"}', "duplicate key 'mode'"),
        ("g.json", '["mode"]', "top level must be a JSON object"),
        ("g.json", '"mode"', "top level must be a JSON object"),
        ("g.json", '{"geoip": {"reload_interval": NaN}}', "NaN is not a JSON number"),
        ("g.json", "[" * 100000 + "]" * 100000, "nested too deeply"),
        ("g.yaml", "mode: off", "geofence reads .toml and .json"),
        ("g", "mode = 'off'", "no extension"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(ConfigError) as caught:
        load_policy(str(path))
    assert caught.value.key == str(path)
    assert fragment in caught.value.reason
    assert str(caught.value).startswith(f"{path}: ")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_bytes(b'mode = "off"\nmessage = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"line 2: the file is not UTF-8") as caught:
        load_policy(path)
    assert caught.value.key == str(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_policy(missing)
    assert caught.value.key == missing
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_policy(folder)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", "mode = 'off'")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError, match="permission denied"):
            load_policy(path)
    finally:
        path.chmod(0o600)


def test_validation_error_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "g.toml", '[[rules]]\naction = "block"\nregions = ["UK"]\n')
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.key == "rules[0].regions[0]"
    assert "did you mean 'GB'?" in caught.value.reason
    assert caught.value.reason.endswith(f"(in {path})")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("enforce_from = 2024-07-09T00:00:00", 'add "Z"'),  # TOML local datetime
        ("enforce_from = 2024-07-09", "date without a time"),  # TOML local date
        ("enforce_from = 07:00:00", "time of day without a date"),  # TOML local time
    ],
)
def test_toml_local_times_are_errors(tmp_path: Path, line: str, fragment: str) -> None:
    path = write(tmp_path, "g.toml", f'[[rules]]\naction = "block"\nregions = ["CN"]\n{line}\n')
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.key == "rules[0].enforce_from"
    assert fragment in caught.value.reason


def test_example_policy_loads() -> None:
    from geofence.cli._example import example_policy

    p = load_policy(example_policy(datetime(2025, 1, 1, tzinfo=UTC)))
    assert p.rules[1].warn_from == datetime(2024, 12, 2, tzinfo=UTC)
    assert p.rules[0].regions == ("CN", "RU", "CU", "IR", "KP", "SY")


def test_readme_schema_example_loads(tmp_path: Path) -> None:
    """The annotated example from DESIGN.md, verbatim apart from the database paths."""
    text = """
mode = "enforce"
default = "allow"
allow_private = true
on_error = "allow"
info_url = "https://example.com/supported-countries"
message = "This service is not available in your country, region, or territory."

[client_ip]
trusted_proxies = ["10.0.0.0/8"]
header = "x-forwarded-for"

[geoip]
country_db = "/var/lib/GeoIP/GeoIP2-Country.mmdb"
anonymous_db = "/var/lib/GeoIP/GeoIP2-Anonymous-IP.mmdb"
reload_interval = 60

[regions]
sanctioned = ["CU", "IR", "KP", "SY", "UA-43", "UA-14", "UA-09", "UA-40"]

[[rules]]
name = "unsupported-regions"
action = "block"
regions = ["CN", "RU", "@sanctioned"]
except_regions = []
anonymizers = []
paths = ["/v1/*"]
methods = []
warn_from = 2024-06-25T00:00:00Z
enforce_from = 2024-07-09T00:00:00Z
status = 451
mode = "enforce"

[exempt]
ips = ["203.0.113.0/24"]
paths = ["/healthz", "/static/*"]
"""
    p = load_policy(write(tmp_path, "design.toml", text))
    assert len(p.rules[0].regions) == 10


# -- a Policy is always valid ----------------------------------------------------------------

EVERY_ADDRESS = ClientIPPolicy(trusted_proxies=(ip_network("0.0.0.0/0"),))
NOT_A_REGION = RulePolicy(name="zzz", action="block", regions=("ZZZ",))


@pytest.mark.parametrize(
    "hand_built",
    [
        {},
        {"client_ip": EVERY_ADDRESS},
        {"rules": (NOT_A_REGION,)},
        {"mode": "enforce", "default": "allow"},
    ],
    ids=["defaults", "trusts-0.0.0.0/0", "region-ZZZ", "valid-values"],
)
def test_a_policy_cannot_be_built_by_hand(hand_built: dict[str, Any]) -> None:
    # Whatever the values, valid or not: only the loader makes a Policy, so none can skip it.
    with pytest.raises(TypeError, match=r"made only by geofence\.load_policy\(mapping\)"):
        Policy(**hand_built)


def test_a_hand_built_invalid_policy_cannot_reach_an_engine() -> None:
    with pytest.raises(TypeError, match="load_policy"):
        Engine(Policy(client_ip=EVERY_ADDRESS))
    with pytest.raises(TypeError, match="load_policy"):
        Engine.from_config(Policy(rules=(NOT_A_REGION,)))
    # The same policies written as mappings are refused by the loader, naming the key.
    with pytest.raises(ConfigError, match=r"client_ip\.trusted_proxies\[0\]: .* trusts every"):
        Engine.from_config(trusted("0.0.0.0/0"))
    with pytest.raises(ConfigError, match=r"rules\[0\]\.regions\[0\]: 'ZZZ'"):
        Engine.from_config({"rules": [{"action": "block", "regions": ["ZZZ"]}]})


def test_a_policy_cannot_be_copied_with_changes_or_subclassed() -> None:
    policy = load_policy({"client_ip": {"trusted_proxies": ["10.0.0.0/8"]}})
    with pytest.raises(TypeError, match="load_policy"):
        replace(policy, client_ip=EVERY_ADDRESS)
    with pytest.raises(TypeError, match="cannot be subclassed"):

        class Lenient(Policy):  # pragma: no cover - never created
            pass


def test_a_policy_from_the_loader_builds_an_engine() -> None:
    config = {"client_ip": {"hops": 1}, "rules": [{"action": "block", "regions": ["CN"]}]}
    policy = load_policy(config)
    info = RequestInfo(peer="10.0.0.1", headers=[("x-forwarded-for", "175.16.199.1")])
    for engine in (Engine.from_config(policy), Engine(policy), Engine.from_config(config)):
        assert engine.policy == policy
        decision = engine.decide(info)
        assert (decision.action, decision.country) == ("block", "CN")
    # The parts of a Policy stay plain dataclasses, for the unit tests of what reads them.
    assert policy.client_ip == ClientIPPolicy(hops=1)
    assert policy.rules[0] == RulePolicy(
        name="rules[0]", action="block", regions=("CN",), key="rules[0]"
    )
