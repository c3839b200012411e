"""The `hosts` and `asns` rule conditions and `geoip.asn_db` (DESIGN "Rule conditions",
"Hosts", "Load time"; the rule keys `hosts` and `asns`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from tests_support import ANON_DB, ASN_DB, COUNTRY_DB, FIXTURES, MAXMIND

from geofence import ConfigError, Engine, RequestInfo, load_policy
from geofence._engine import normalize_host, request_host
from geofence._model import Facts
from geofence.accounts import Account
from geofence.geoip import Reloading
from geofence.rules._conditions import Asns, Hosts
from geofence.rules._rule import Rule

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
TELSTRA = "1.128.0.1"  # AS1221 in GeoLite2-ASN-Test
ATT = "12.81.92.1"  # AS7018
MERIT_V6 = "2600:6000::1"  # AS237
NOT_IN_ASN_DB = "8.8.8.8"
ASN_WITH_COUNTRIES = str(FIXTURES / "GeoLite2-ASN-with-countries.mmdb")  # no ASN numbers


def facts(host: str | None = None, asn: int | None = None) -> Facts:
    return Facts("GET", "/", "US", (), frozenset(), "default", None, host, asn)


def rule(**keys: object) -> Rule:
    geoip = {"asn_db": ASN_DB} if "asns" in keys else {}
    policy = load_policy({"geoip": geoip, "rules": [{"name": "r", "action": "block", **keys}]})
    return Rule.compile(policy.rules[0])


def error_of(config: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_policy(config)
    return caught.value


# -- hosts: the condition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("globs", "host", "matches"),
    [
        (["api.example.com"], "api.example.com", True),
        (["api.example.com"], "www.example.com", False),
        (["API.Example.COM"], "api.example.com", True),  # case-insensitive
        (["*.example.com"], "api.example.com", True),
        (["*.example.com"], "a.b.example.com", True),  # one or more whole labels
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "badexample.com", False),
        (["*.example.com"], "example.com.evil.net", False),
        (["api.*.example.com"], "api.eu.example.com", True),
        (["api.*.example.com"], "api.example.com", False),
        (["example.*"], "example.org", True),
        (["[::1]"], "::1", True),
        (["::1"], "::1", True),
        (["[2001:DB8:0::1]"], "2001:db8::1", True),
        (["203.0.113.7"], "203.0.113.7", True),
        (["a.example.com", "b.example.com"], "b.example.com", True),
        (["api.example.com"], "", False),  # no host: no hosts rule matches
    ],
)
def test_hosts_globs(globs: list[str], host: str, matches: bool) -> None:
    (condition,) = rule(hosts=globs).conditions
    assert isinstance(condition, Hosts)
    assert condition.matches(facts(host=host)) is matches
    if not matches:
        assert condition.why_not(facts(host=host))


def test_a_request_without_host_facts_matches_no_hosts_rule() -> None:
    (condition,) = rule(hosts=["*.example.com"]).conditions
    assert not condition.matches(facts(host=None))
    assert condition.why_not(facts(host=None)) == "the request has no host"


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("API.Example.com", "api.example.com"),
        ("api.example.com:8443", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("api.example.com.:80", "api.example.com"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("[2001:DB8:0:0::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("203.0.113.7:8080", "203.0.113.7"),
        ("[::1", ""),
        ("[::1]junk", ""),
        ("[not-v6]:80", ""),
        ("a" * 300, ""),
        ("", ""),
    ],
)
def test_the_request_host_is_normalised(raw: str, host: str) -> None:
    assert normalize_host(raw) == host


def test_the_host_comes_from_request_info_else_the_host_header() -> None:
    assert request_host(RequestInfo("1.2.3.4", [("HOST", "A.example.com:80")])) == "a.example.com"
    given = RequestInfo("1.2.3.4", [("host", "b.example.com")], host="c.example.com")
    assert request_host(given) == "c.example.com"
    assert request_host(RequestInfo("1.2.3.4")) == ""


def test_empty_or_omitted_hosts_place_no_constraint() -> None:
    assert not any(isinstance(c, Hosts) for c in rule(hosts=[], regions=["CN"]).conditions)
    engine = Engine.from_config({"rules": [{"name": "cn", "action": "block", "regions": ["*"]}]})
    assert not engine.needs_host
    for host in ("a.example.com", "", "b.example.org"):
        decision = engine.decide(RequestInfo(TELSTRA, host=host), NOW)
        assert decision.action == "block"


# -- hosts: the loader ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("api.example.com:8443", "without the port"),
        ("[::1]:8000", "without the port"),
        ("https://api.example.com", "is not a host"),
        ("api.example.com/v1", "is not a host"),
        ("api-*.example.com", "whole labels"),
        ("*", "matches every host"),
        ("*.*", "matches every host"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("exa mple.com", "is not a host name"),
        ("a..example.com", "is not a host name"),
        ("-a.example.com", "is not a host name"),
        ("[zz::1]", "is not an IPv6 address"),
        (42, "expected a host glob string"),
    ],
)
def test_bad_hosts_are_config_errors(value: object, words: str) -> None:
    error = error_of({"rules": [{"name": "r", "action": "block", "hosts": ["ok.com", value]}]})
    assert error.key == "rules[0].hosts[1]"
    assert words in error.reason


def test_hosts_must_be_a_list() -> None:
    error = error_of({"rules": [{"name": "r", "action": "block", "hosts": "api.example.com"}]})
    assert error.key == "rules[0].hosts"
    assert '["api.example.com"]' in error.reason


def test_hosts_are_normalised_and_deduplicated() -> None:
    policy = load_policy(
        {
            "rules": [
                {
                    "name": "r",
                    "action": "block",
                    "hosts": ["API.example.com", "api.example.com.", "[::1]", "*.Example.com"],
                }
            ]
        }
    )
    assert policy.rules[0].hosts == ("api.example.com", "::1", "*.example.com")


def test_a_block_rule_with_only_hosts_is_a_rule_with_conditions() -> None:
    policy = load_policy({"rules": [{"name": "r", "action": "block", "hosts": ["a.example.com"]}]})
    assert policy.rules[0].hosts == ("a.example.com",)


# -- hosts: the engine's decision cache -------------------------------------------------------


def host_engine(**extra: Any) -> Engine:
    config: dict[str, Any] = {
        "rules": [
            {"name": "api-only", "action": "block", "regions": ["AU"], "hosts": ["api.example.com"]}
        ],
        **extra,
    }
    return Engine.from_config(config)


@pytest.mark.parametrize("dated", [False, True])
def test_two_hosts_same_peer_and_path_get_their_own_decisions(dated: bool) -> None:
    engine = host_engine()
    assert engine.needs_host
    now = NOW if dated else None
    for _ in range(5):  # repeated: every answer after the first comes from the cache
        for host, action in (
            ("api.example.com", "block"),
            ("www.example.com", "allow"),
            ("API.EXAMPLE.COM:443", "block"),
            ("", "allow"),
        ):
            request = RequestInfo(TELSTRA, method="GET", path="/v1/x", host=host)
            assert engine.decide(request, now).action == action, host
            assert engine.answer(request, now).decision.action == action, host
            # The Host header counts when the adapter leaves RequestInfo.host empty.
            headers = [("host", host)] if host else []
            by_header = RequestInfo(TELSTRA, headers, "GET", "/v1/x")
            assert engine.decide(by_header, now).action == action, host


def test_cached_never_answers_across_hosts() -> None:
    engine = host_engine()
    www = RequestInfo(TELSTRA, path="/", host="www.example.com")
    assert engine.answer(www).decision.action == "allow"
    assert engine.answer(www).decision.action == "allow"
    # The decision for www is cached, but cached() is given no host: it must not answer,
    # since the same (peer, method, path) on api.example.com is blocked.
    assert engine.cached(TELSTRA, "GET", "/") is None
    api = RequestInfo(TELSTRA, path="/", host="api.example.com")
    assert engine.answer(api).decision.action == "block"
    assert engine.cached(TELSTRA, "GET", "/") is None


def test_cached_still_answers_without_host_rules() -> None:
    engine = Engine.from_config({"rules": [{"name": "au", "action": "block", "regions": ["AU"]}]})
    assert not engine.needs_host
    request = RequestInfo(ATT, path="/", host="www.example.com")
    assert engine.answer(request).decision.action == "allow"
    answer = engine.cached(ATT, "GET", "/")
    assert answer is not None and answer.decision.action == "allow"


def test_hosts_with_accounts_are_decided_per_host() -> None:
    engine = host_engine(accounts={"store": "memory://"})
    account = Account("org_1", home_country="AU")
    for _ in range(3):
        for host, action in (("api.example.com", "block"), ("www.example.com", "allow")):
            request = RequestInfo(TELSTRA, path="/", host=host)
            assert engine.decide(request, account=account).action == action
            assert engine.answer(request, account=account).decision.action == action
            assert engine.cached(TELSTRA, "GET", "/", account) is None


def test_hosts_with_home_rules_keep_both_in_the_key() -> None:
    engine = Engine.from_config(
        {
            "accounts": {},
            "rules": [
                {
                    "name": "cn-homes-on-api",
                    "action": "block",
                    "home_regions": ["CN"],
                    "hosts": ["api.example.com"],
                }
            ],
        }
    )
    cn, us = Account("a", home_country="CN"), Account("b", home_country="US")
    for _ in range(3):
        for account, host, action in (
            (cn, "api.example.com", "block"),
            (cn, "www.example.com", "allow"),
            (us, "api.example.com", "allow"),
        ):
            request = RequestInfo(ATT, path="/", host=host)
            assert engine.decide(request, account=account).action == action


def test_check_explains_a_host_mismatch() -> None:
    engine = host_engine()
    reasons = engine.explain(RequestInfo(TELSTRA, host="www.example.com"), NOW)
    assert reasons == [("api-only", "host 'www.example.com' matches none of api.example.com")]


def test_the_no_host_hot_path_reads_no_header() -> None:
    class Untouchable(list[tuple[str, str]]):
        def __iter__(self) -> Any:
            raise AssertionError("headers read")

    engine = Engine.from_config({"rules": [{"name": "au", "action": "block", "regions": ["AU"]}]})
    assert engine.decide(RequestInfo(ATT, Untouchable(), path="/")).action == "allow"
    assert engine.decide(RequestInfo(ATT, Untouchable(), path="/")).action == "allow"


# -- asns: the condition and the loader -------------------------------------------------------


def test_asns_condition() -> None:
    (condition,) = rule(asns=[1221, "AS7018", "as237"]).conditions
    assert isinstance(condition, Asns)
    assert condition.numbers == frozenset({1221, 7018, 237})
    assert condition.matches(facts(asn=1221))
    assert not condition.matches(facts(asn=3356))
    assert condition.why_not(facts(asn=3356)) == "AS3356 is none of AS237, AS1221, AS7018"
    assert not condition.matches(facts(asn=None))
    assert "no autonomous system number" in condition.why_not(facts(asn=None))


def test_empty_asns_place_no_constraint() -> None:
    assert not any(isinstance(c, Asns) for c in rule(asns=[], regions=["CN"]).conditions)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "AS0 is reserved"),
        ("AS0", "AS0 is reserved"),
        (-1, "is not an autonomous system number"),
        (4_294_967_296, "is not an autonomous system number"),
        ("1221", 'write 1221 or "AS1221"'),
        ("ASN1221", "is not an autonomous system number"),
        ("AS 1221", "is not an autonomous system number"),
        ("AS1.10", "is not an autonomous system number"),
        (True, "a boolean"),
        (12.5, "a number"),
    ],
)
def test_bad_asns_are_config_errors(value: object, words: str) -> None:
    error = error_of(
        {"geoip": {"asn_db": ASN_DB}, "rules": [{"name": "r", "action": "block", "asns": [value]}]}
    )
    assert error.key == "rules[0].asns[0]"
    assert words in error.reason


def test_asns_accept_the_largest_number_and_deduplicate() -> None:
    policy = load_policy(
        {
            "geoip": {"asn_db": ASN_DB},
            "rules": [{"name": "r", "action": "block", "asns": [4_294_967_295, 1221, "AS1221"]}],
        }
    )
    assert policy.rules[0].asns == (4_294_967_295, 1221)


def test_asns_without_asn_db_is_a_config_error() -> None:
    error = error_of({"rules": [{"name": "r", "action": "block", "asns": [1221]}]})
    assert error.key == "rules[0].asns"
    assert "needs geoip.asn_db" in error.reason


# -- asns: the engine, with MaxMind's GeoLite2-ASN test database -------------------------------


def asn_engine(**geoip: Any) -> Engine:
    return Engine.from_config(
        {
            "geoip": {"asn_db": ASN_DB, **geoip},
            "rules": [
                {"name": "telstra", "action": "block", "asns": ["AS1221"]},
                {"name": "att-v1", "action": "warn", "asns": [7018], "paths": ["/v1/*"]},
                {"name": "merit", "action": "block", "asns": [237], "status": 403},
            ],
        }
    )


def test_asn_rules_match_the_clients_autonomous_system() -> None:
    engine = asn_engine()
    blocked = engine.decide(RequestInfo(TELSTRA, path="/"), NOW)
    assert (blocked.action, blocked.rule, blocked.asn) == ("block", "telstra", 1221)
    warned = engine.decide(RequestInfo(ATT, path="/v1/x"), NOW)
    assert (warned.action, warned.rule, warned.asn) == ("warn", "att-v1", 7018)
    allowed = engine.decide(RequestInfo(ATT, path="/"), NOW)
    assert (allowed.action, allowed.reason, allowed.asn) == ("allow", "default", 7018)
    v6 = engine.decide(RequestInfo(MERIT_V6, path="/"), NOW)
    assert (v6.action, v6.status, v6.asn) == ("block", 403, 237)
    unknown = engine.decide(RequestInfo(NOT_IN_ASN_DB, path="/"), NOW)
    assert (unknown.action, unknown.asn) == ("allow", None)
    reasons = dict(engine.explain(RequestInfo(NOT_IN_ASN_DB, path="/"), NOW))
    assert "no autonomous system number" in reasons["telstra"]


def test_no_asn_lookup_without_asn_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.from_config(
        {
            "geoip": {"asn_db": ASN_DB},
            "rules": [{"name": "au", "action": "block", "regions": ["AU"]}],
        }
    )
    assert engine.asn_db is not None  # opened and checked at load all the same

    def refuse(ip: object) -> int:
        raise AssertionError("ASN database consulted")

    monkeypatch.setattr(engine.asn_db, "find", refuse)
    monkeypatch.setattr(engine.asn_db, "lookup", refuse)
    decision = engine.decide(RequestInfo(TELSTRA, path="/"), NOW)
    assert (decision.action, decision.asn) == ("block", None)


def test_an_asn_database_without_numbers_answers_none() -> None:
    engine = asn_engine(asn_db=ASN_WITH_COUNTRIES)
    assert engine.decide(RequestInfo(TELSTRA, path="/"), NOW).action == "allow"


# -- asn_db at load ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["GeoIP2-Country-Test.mmdb", "GeoIP2-Anonymous-IP-Test.mmdb"])
def test_asn_db_of_the_wrong_type_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        asn_engine(asn_db=str(MAXMIND / name))
    assert caught.value.key == "geoip.asn_db"
    assert "needs a GeoLite2-ASN or GeoIP2-ISP database" in caught.value.reason


def test_an_asn_database_is_still_refused_as_country_or_anonymous_db() -> None:
    for key in ("country_db", "anonymous_db"):
        with pytest.raises(ConfigError) as caught:
            Engine.from_config({"geoip": {key: ASN_DB}})
        assert caught.value.key == f"geoip.{key}"


def test_asn_db_missing_or_corrupt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        asn_engine(asn_db=str(tmp_path / "nowhere.mmdb"))
    assert (caught.value.key, "does not exist" in caught.value.reason) == ("geoip.asn_db", True)
    truncated = tmp_path / "truncated.mmdb"
    data = Path(ASN_DB).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as caught:
        asn_engine(asn_db=str(truncated))
    assert caught.value.key == "geoip.asn_db"
    empty = tmp_path / "empty.mmdb"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError) as caught:
        asn_engine(asn_db=str(empty))
    assert (caught.value.key, "is empty" in caught.value.reason) == ("geoip.asn_db", True)


def test_asn_db_is_a_path_setting(tmp_path: Path) -> None:
    error = error_of({"geoip": {"asn_db": 5}})
    assert error.key == "geoip.asn_db"
    (tmp_path / "GeoLite2-ASN.mmdb").write_bytes(Path(ASN_DB).read_bytes())
    (tmp_path / "geofence.toml").write_text('[geoip]\nasn_db = "GeoLite2-ASN.mmdb"\n')
    policy = load_policy(tmp_path / "geofence.toml")
    assert policy.geoip.asn_db == str(tmp_path / "GeoLite2-ASN.mmdb")


def test_asn_db_works_with_the_other_databases() -> None:
    engine = asn_engine(country_db=COUNTRY_DB, anonymous_db=ANON_DB)
    assert engine.decide(RequestInfo(TELSTRA, path="/"), NOW).rule == "telstra"


# -- asn_db reload ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_mtimes = itertools.count(1_700_000_000)


def install(source: str, target: Path) -> None:
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    seconds = next(_mtimes)
    os.utime(tmp, ns=(seconds * 10**9, seconds * 10**9))
    os.replace(tmp, target)


def test_a_replaced_asn_db_is_reloaded_and_moves_the_cache_on(tmp_path: Path) -> None:
    target = tmp_path / "GeoLite2-ASN.mmdb"
    install(ASN_DB, target)
    clock = Clock()
    engine = Engine.from_config(
        {
            "geoip": {"asn_db": str(target), "reload_interval": 60},
            "rules": [{"name": "telstra", "action": "block", "asns": [1221]}],
        },
        clock=clock,
    )
    assert isinstance(engine.asn_db, Reloading)
    request = RequestInfo(TELSTRA, path="/")
    assert engine.decide(request).action == "block"
    assert engine.decide(request).action == "block"  # cached
    install(ASN_WITH_COUNTRIES, target)  # a valid ASN database that knows no numbers
    clock.now += 61
    assert engine.decide(request).action == "allow"
    assert engine.asn_db.reloads == 1
    # A replacement of the wrong type is refused; the loaded one keeps answering.
    install(COUNTRY_DB, target)
    clock.now += 61
    assert engine.decide(RequestInfo(ATT, path="/")).action == "allow"
    assert engine.asn_db.reloads == 1
    assert engine.asn_db.rejections == 1


# -- adapters pass the host (only when the engine needs it) -----------------------------------


def asgi_call(app: Any, scope: dict[str, Any]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status: int = sent[0]["status"]
    return status


async def ok_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_asgi_gate_decides_per_host() -> None:
    from geofence.http._asgi import ASGIGate

    gate = ASGIGate(ok_asgi, host_engine())
    for _ in range(3):
        for headers, server, status in (
            ([(b"host", b"api.example.com")], None, 451),
            ([(b"host", b"www.example.com:8000")], None, 200),
            ([], ("api.example.com", 443), 451),  # no Host header: the server's name
            ([], None, 200),
        ):
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/",
                "headers": headers,
                "client": (TELSTRA, 50000),
                "server": server,
            }
            assert asgi_call(gate, scope) == status, (headers, server)


def test_the_wsgi_gate_decides_per_host() -> None:
    from geofence.http._wsgi import WSGIGate

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    gate = WSGIGate(host_engine(), app)
    for _ in range(3):
        for extra, status in (
            ({"HTTP_HOST": "api.example.com"}, "451"),
            ({"HTTP_HOST": "www.example.com:8000"}, "200"),
            ({"SERVER_NAME": "api.example.com"}, "451"),  # HTTP/1.0 without Host
            ({"SERVER_NAME": "www.example.com"}, "200"),
        ):
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/",
                "REMOTE_ADDR": TELSTRA,
                "wsgi.url_scheme": "http",
                **extra,
            }
            seen: list[str] = []
            body = gate.wsgi(environ, lambda s, h, e=None, seen=seen: seen.append(s))
            list(body)
            assert seen[0].startswith(status), extra


def test_django_request_info_passes_the_raw_host() -> None:
    django_middleware = pytest.importorskip("geofence_django.middleware")

    class Request:
        method = "GET"
        path_info = "/"

        def __init__(self, meta: dict[str, str]) -> None:
            self.META = meta

    info = django_middleware.request_info(Request({"REMOTE_ADDR": TELSTRA, "HTTP_HOST": "evil"}))
    assert info.host == "evil"  # never request.get_host(), which raises on a disallowed host
    info = django_middleware.request_info(Request({"SERVER_NAME": "api.example.com"}))
    assert info.host == "api.example.com"


def test_an_engine_keeps_cpythons_shared_key_instance_dict() -> None:
    # Past 29 instance attributes CPython gives an object a combined dict, and every attribute
    # read on the hot path of decide() gets slower (measured: +2 % instructions per repeated
    # request). New state goes into an existing attribute, or a property.
    engine = Engine.from_config(
        {"geoip": {"asn_db": ASN_DB}, "accounts": {}, "rules": [{"name": "r", "action": "allow"}]}
    )
    assert len(vars(engine)) <= 29


def test_flask_decides_per_host() -> None:
    flask = pytest.importorskip("flask")
    from geofence_flask import Geofence

    app = flask.Flask("hosts")
    app.config["GEOFENCE"] = {
        "rules": [
            {"name": "api-only", "action": "block", "regions": ["AU"], "hosts": ["api.example.com"]}
        ]
    }

    @app.get("/")
    def index() -> str:
        return "ok"

    Geofence(app)
    client = app.test_client()
    for _ in range(3):
        for host, status in (("api.example.com", 451), ("www.example.com", 200)):
            response = client.get(
                "/", headers={"Host": host}, environ_overrides={"REMOTE_ADDR": TELSTRA}
            )
            assert response.status_code == status, host
