"""The decision engine end to end on real MaxMind test databases."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests_support import ANON_DB, BAD_RECORD_DB, CITY_DB, COUNTRY_DB

import geofence
from geofence import ConfigError, Engine, RequestInfo

CN, GB, US, SE, RU, IR = (
    "175.16.199.1",
    "81.2.69.142",
    "216.160.83.56",
    "89.160.20.112",
    "2a02:d0c0::1",
    "2a02:d2c0::1",
)
NO_COUNTRY = "214.1.1.1"
NOT_FOUND = "1.1.1.1"
UTC = timezone.utc
T0 = datetime(2024, 7, 9, tzinfo=UTC)


def engine(**config: Any) -> Engine:
    config.setdefault("geoip", {"country_db": CITY_DB, "reload_interval": 0})
    return Engine.from_config(config)


def decide(
    e: Engine,
    peer: str,
    path: str = "/",
    method: str = "GET",
    now: datetime | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> geofence.Decision:
    return e.decide(
        RequestInfo(peer=peer, headers=headers or [], method=method, path=path), now=now
    )


def test_contract_example_from_design() -> None:
    e = engine(
        rules=[{"name": "unsupported-regions", "action": "block", "regions": ["CN", "GB-ENG"]}]
    )
    d = decide(e, GB, "/v1/models")
    assert (d.action, d.enforced, d.reason, d.rule) == (
        "block",
        True,
        "rule",
        "unsupported-regions",
    )
    assert (d.client_ip, d.country, d.subdivisions) == (GB, "GB", ("GB-ENG",))


def test_first_match_wins_and_default() -> None:
    e = engine(
        default="block",
        rules=[
            {"name": "allow-gb", "action": "allow", "regions": ["GB"]},
            {"name": "block-gb", "action": "block", "regions": ["GB"]},
            {"name": "warn-us", "action": "warn", "regions": ["US"]},
        ],
    )
    assert decide(e, GB).rule == "allow-gb"
    assert decide(e, GB).action == "allow"
    assert decide(e, US).action == "warn"
    d = decide(e, SE)
    assert (d.action, d.reason, d.rule, d.country) == ("block", "default", None, "SE")


def test_except_regions_groups_star_and_unknown() -> None:
    e = engine(
        regions={"nordic": ["SE", "NO", "FI"]},
        rules=[
            {"name": "unknown", "action": "block", "regions": ["unknown"]},
            {
                "name": "all-but-nordic",
                "action": "warn",
                "regions": ["*"],
                "except_regions": ["@nordic", "US-WA"],
            },
        ],
    )
    assert decide(e, SE).action == "allow"
    assert decide(e, US).action == "allow"  # US-WA subtracted
    assert decide(e, GB).rule == "all-but-nordic"
    d = decide(e, NO_COUNTRY)
    assert (d.action, d.rule, d.country) == ("block", "unknown", None)
    d = decide(e, NOT_FOUND)
    assert (d.action, d.rule) == ("block", "unknown")
    # An unresolvable client matches "unknown" too.
    d = decide(e, "not-an-ip")
    assert (d.action, d.rule, d.client_ip) == ("block", "unknown", None)


def test_fallback_reasons_without_rules() -> None:
    e = engine()
    assert decide(e, NOT_FOUND).reason == "not_found"
    assert decide(e, NO_COUNTRY).reason == "no_country"
    assert decide(e, "garbage").reason == "unresolved_client"
    assert decide(e, US).reason == "default"


def test_star_does_not_match_unknown_and_cn_not_hk() -> None:
    e = engine(rules=[{"action": "block", "regions": ["*"]}])
    assert decide(e, NO_COUNTRY).action == "allow"
    assert decide(e, CN).action == "block"


def test_paths_methods_and_head() -> None:
    e = engine(
        rules=[
            {
                "name": "api-get",
                "action": "block",
                "regions": ["CN"],
                "paths": ["/v1/*"],
                "methods": ["get"],
            },
        ]
    )
    assert decide(e, CN, "/v1/models").action == "block"
    assert decide(e, CN, "/v1/models", "HEAD").action == "block"
    assert decide(e, CN, "/v1/models", "POST").action == "allow"
    assert decide(e, CN, "/v1").action == "allow"
    assert decide(e, CN, "/V1/models").action == "allow"  # case-sensitive


def test_grace_window_boundaries() -> None:
    e = engine(
        rules=[
            {
                "name": "r",
                "action": "block",
                "regions": ["CN"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2024-07-09T00:00:00Z",
            }
        ]
    )
    warn_from = datetime(2024, 6, 25, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    assert decide(e, CN, now=warn_from - tick).action == "allow"
    d = decide(e, CN, now=warn_from)
    assert (d.action, d.enforced, d.rule) == ("warn", True, "r")
    assert d.warn_from == warn_from and d.enforce_from == T0
    assert "grace" in d.phase
    assert decide(e, CN, now=T0 - tick).action == "warn"
    d = decide(e, CN, now=T0)
    assert (d.action, d.status) == ("block", 451)
    assert "enforced" in d.phase
    # The same instant in another zone is the same instant.
    assert decide(e, CN, now=T0.astimezone(timezone(timedelta(hours=-7)))).action == "block"


def test_rule_without_warn_from_is_off_until_enforce_from() -> None:
    e = engine(
        rules=[{"action": "block", "regions": ["CN"], "enforce_from": "2024-07-09T00:00:00Z"}]
    )
    assert decide(e, CN, now=T0 - timedelta(seconds=1)).action == "allow"
    assert decide(e, CN, now=T0).action == "block"


def test_warn_rule_without_dates_warns_always() -> None:
    e = engine(rules=[{"action": "warn", "regions": ["CN"]}])
    assert decide(e, CN, now=datetime(1990, 1, 1, tzinfo=UTC)).action == "warn"


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(engine(), CN, now=datetime(2024, 1, 1))


def test_report_mode_keeps_action_but_not_enforced(caplog: pytest.LogCaptureFixture) -> None:
    e = engine(mode="report", rules=[{"name": "cn", "action": "block", "regions": ["CN"]}])
    with caplog.at_level(logging.INFO, logger="geofence"):
        d = decide(e, CN)
    assert (d.action, d.enforced, d.rule) == ("block", False, "cn")
    assert e.answer(RequestInfo(peer=CN)).response is None
    assert any("would block" in r.getMessage() for r in caplog.records)


def test_per_rule_report_is_a_dry_run_that_never_changes_the_outcome() -> None:
    e = engine(
        rules=[
            {"name": "dry", "action": "block", "regions": ["CN", "GB"], "mode": "report"},
            {"name": "real", "action": "block", "regions": ["GB"]},
        ]
    )
    d = decide(e, CN)  # allowed anyway: the decision shows what the dry run would do
    assert (d.action, d.enforced, d.rule, d.report_rules) == ("block", False, "dry", ("dry",))
    d = decide(e, GB)  # the enforced rule behind the dry run still applies
    assert (d.action, d.enforced, d.rule, d.report_rules) == ("block", True, "real", ("dry",))
    d = decide(e, US)
    assert (d.action, d.report_rules) == ("allow", ())


def test_mode_off() -> None:
    e = engine(mode="off", rules=[{"action": "block", "regions": ["CN"]}])
    d = decide(e, CN)
    assert (d.action, d.reason) == ("allow", "off")
    assert not e.active


def test_exemptions_come_first() -> None:
    e = engine(
        allow_private=True,
        exempt={"ips": ["175.16.199.0/24", "10.0.0.0/8"], "paths": ["/healthz", "/static/*"]},
        rules=[{"action": "block", "regions": ["*", "unknown"]}],
    )
    assert decide(e, CN).reason == "exempt_ip"
    assert decide(e, "10.1.1.1").reason == "exempt_ip"  # exemption before private
    assert decide(e, US, "/healthz").reason == "exempt_path"
    assert decide(e, US, "/static/a/b.css").reason == "exempt_path"
    # Dot segments never match an exemption.
    assert decide(e, US, "/static/../admin").action == "block"
    assert decide(e, US, "/static/./x").action == "block"
    # The IPv4-mapped spelling of an exempt address is exempt too, and no wider.
    assert decide(e, "::ffff:175.16.199.1").reason == "exempt_ip"


def test_private_clients() -> None:
    rules = [{"name": "unknown", "action": "block", "regions": ["unknown"]}]
    d = decide(engine(rules=rules), "192.168.1.10")
    assert (d.action, d.reason, d.client_ip) == ("allow", "private", "192.168.1.10")
    d = decide(engine(allow_private=False, rules=rules), "192.168.1.10")
    assert (d.action, d.rule) == ("block", "unknown")
    d = decide(engine(allow_private=False), "fe80::1%eth0")
    assert (d.action, d.reason, d.client_ip) == ("allow", "private", "fe80::1")


def test_anonymizers(caplog: pytest.LogCaptureFixture) -> None:
    e = engine(
        geoip={"country_db": CITY_DB, "anonymous_db": ANON_DB, "reload_interval": 0},
        rules=[
            {"name": "no-tor", "action": "block", "anonymizers": ["tor"]},
            {"name": "vpn-warn", "action": "warn", "anonymizers": ["vpn"]},
        ],
    )
    assert decide(e, "65.0.0.1").rule == "no-tor"
    d = decide(e, "1.2.0.1")
    assert (d.rule, d.anonymizers) == ("vpn-warn", ("vpn",))
    assert decide(e, "81.2.69.1").rule == "no-tor"  # every flag
    assert decide(e, US).action == "allow"


def test_subdivision_rule_needs_a_database_with_subdivisions() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\].*UA-43.*City"):
        engine(
            geoip={"country_db": COUNTRY_DB, "reload_interval": 0},
            rules=[{"action": "block", "regions": ["UA-43"]}],
        )
    with pytest.raises(ConfigError, match="embedded"):
        Engine.from_config({"rules": [{"action": "block", "except_regions": ["GB-ENG"]}]})


def test_db_error_on_error_allow_and_block() -> None:
    geoip = {"country_db": BAD_RECORD_DB, "reload_interval": 0}
    d = decide(engine(geoip=geoip), US)
    assert (d.action, d.reason, d.enforced) == ("allow", "db_error", True)
    e = engine(geoip=geoip, on_error="block")
    d = decide(e, US)
    assert (d.action, d.reason, d.status, d.enforced) == ("block", "db_error", 503, True)
    denial = e.answer(RequestInfo(peer=US)).response
    assert denial is not None and denial.status == 503
    d = decide(engine(geoip=geoip, on_error="block", mode="report"), US)
    assert (d.action, d.enforced) == ("block", False)


def test_denial_and_warn_headers() -> None:
    e = engine(
        info_url="https://example.com/info",
        rules=[
            {"name": "b", "action": "block", "regions": ["CN"], "status": 403},
            {
                "name": "w",
                "action": "block",
                "regions": ["GB"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2999-01-01T00:00:00Z",
            },
        ],
    )
    req = RequestInfo(peer=CN, headers=[("Accept", "text/html")])
    blocked = e.answer(req)
    denial = blocked.response
    assert denial is not None and denial.status == 403 and denial.html
    assert denial.page == denial.body
    head = e.answer(RequestInfo(peer=CN, method="HEAD", headers=[("Accept", "text/html")]))
    assert head.response is not None and head.response.body == b""
    assert head.response.status == 403 and head.response.page == denial.body
    warned = e.answer(RequestInfo(peer=GB, headers=[("Accept", "text/html")]))
    assert warned.response is None
    headers = dict(warned.headers(lambda name: None))
    assert headers["Sunset"] == "Tue, 01 Jan 2999 00:00:00 GMT"
    assert headers["Deprecation"] == "@1719273600"
    assert blocked.headers(lambda name: None) == []


def test_trusted_proxy_chain_feeds_rules() -> None:
    e = engine(
        client_ip={"trusted_proxies": ["10.0.0.0/8"]},
        rules=[{"name": "cn", "action": "block", "regions": ["CN"]}],
    )
    d = decide(e, "10.0.0.1", headers=[("X-Forwarded-For", f"{US}, {CN}, 10.2.2.2")])
    assert (d.action, d.client_ip) == ("block", CN)
    d = decide(e, US, headers=[("X-Forwarded-For", CN)])  # untrusted peer: header ignored
    assert (d.action, d.client_ip) == ("allow", US)


def test_decide_never_raises_on_odd_requests() -> None:
    e = engine(rules=[{"action": "block", "regions": ["CN"], "paths": ["/v1/*"]}])
    for peer in ["", " ", "::", "0.0.0.0", "255.255.255.255", "224.0.0.1", "\x00", "1" * 10_000]:
        for path in ["", "\n", "/v1/\x00", "/" + "a" * 100_000]:
            d = decide(e, peer, path, method="\r\n")
            assert d.action == "allow"
            assert d.client_ip is None


def test_decision_cache_is_bounded_and_skips_huge_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import geofence._engine

    monkeypatch.setattr(geofence._engine, "CACHE_SIZE", 100)
    e = engine(rules=[{"action": "block", "regions": ["CN"]}])
    for i in range(1000):
        decide(e, f"216.160.{i // 256}.{i % 256}")
        assert len(e._cache) <= 100
    e._cache.clear()
    decide(e, US, "/" + "a" * 5000)
    decide(e, US, "/", method="X" * 100)
    assert e._cache == {}


def test_cached_decision_follows_the_clock_across_rule_dates() -> None:
    e = engine(
        rules=[
            {
                "name": "r",
                "action": "block",
                "regions": ["CN"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2024-07-09T00:00:00Z",
            }
        ]
    )
    moments = [T0, T0 - timedelta(days=1), T0 - timedelta(days=30), T0 + timedelta(days=1), T0]
    actions = [decide(e, CN, now=m).action for m in moments]
    assert actions == ["block", "warn", "allow", "block", "block"]


def test_cached_decision_per_trusted_chain() -> None:
    e = engine(
        client_ip={"trusted_proxies": ["10.0.0.0/8"]},
        rules=[{"name": "cn", "action": "block", "regions": ["CN"]}],
    )
    for _ in range(3):
        assert decide(e, "10.0.0.1", headers=[("x-forwarded-for", CN)]).action == "block"
        assert decide(e, "10.0.0.1", headers=[("x-forwarded-for", US)]).action == "allow"
        assert decide(e, "10.0.0.1").reason == "unresolved_client"


def test_rule_dates_before_1970_are_exact() -> None:
    # Negative epoch microseconds once looked like "not computed yet" to the cache.
    enforce = datetime(1800, 1, 2, tzinfo=UTC)
    e = engine(
        default="block",
        rules=[
            {"name": "g", "action": "allow", "regions": ["CN"], "enforce_from": enforce.isoformat()}
        ],
    )
    tick = timedelta(microseconds=1)
    assert [decide(e, CN, now=enforce + k * tick).action for k in (-1, 0, 1)] == [
        "block",
        "allow",
        "allow",
    ]


def test_cached_answers_only_repeated_allowed_requests_of_direct_clients() -> None:
    e = engine(
        client_ip={"trusted_proxies": ["10.0.0.0/8"]},
        rules=[{"name": "cn", "action": "block", "regions": ["CN"]}],
    )
    assert e.cached(US, "GET", "/") is None  # never decided yet
    allowed = decide(e, US)
    hit = e.cached(US, "GET", "/")
    assert hit is not None and hit.decision is allowed and hit.response is None
    assert not hit.amends
    assert e.cached(US, "POST", "/") is None  # another method, another key
    assert e.cached(US, "GET", "/other") is None
    # A block must be logged (and answered) by decide(): never served from cached().
    assert decide(e, CN).action == "block"
    assert e.cached(CN, "GET", "/") is None
    # A trusted proxy's requests depend on their headers: never keyed on the peer alone.
    assert decide(e, "10.0.0.1", headers=[("x-forwarded-for", US)]).action == "allow"
    assert e.cached("10.0.0.1", "GET", "/") is None


def test_cached_passes_everything_in_mode_off() -> None:
    e = engine(mode="off", rules=[{"name": "cn", "action": "block", "regions": ["CN"]}])
    for peer in (US, CN):
        hit = e.cached(peer, "GET", "/")
        assert hit is not None and hit.response is None and not hit.amends
        assert hit.decision.reason == "off"
        assert e.answer(geofence.RequestInfo(peer)) is hit
