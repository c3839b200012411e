"""One scenario table, run through every adapter (tests/<framework>/test_scenarios.py).

Each adapter's runner builds its framework's test app around the same tiny view (see APP_*
below), sends the scenario's request with the framework's real test client, and checks
:func:`check`. Differences between adapters are security bugs, so every scenario runs
everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent.parent.parent / "data"
CITY_DB = str(DATA / "maxmind" / "test-data" / "GeoIP2-City-Test.mmdb")
# A GeoIP2-City database that loads and answers the smoke lookups, but whose record for
# 216.160.83.0/24 is malformed: a lookup of US (below) fails at request time.
BAD_RECORD_DB = str(DATA / "fixtures" / "GeoIP2-City-bad-record.mmdb")

# What the view every runner mounts (on every path, every method) answers.
APP_STATUS = 200
APP_BODY = b"hello from the app"
APP_CONTENT_TYPE = "text/plain; charset=utf-8"
APP_CACHE_CONTROL = "max-age=60"
APP_LINK = '</docs>; rel="help"'

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# Addresses from MaxMind's City test database.
CN = "175.16.199.1"
GB = "81.2.69.142"
US = "216.160.83.56"
RU = "2a02:d0c0::1"
IR = "2a02:d2c0::1"
SE = "89.160.20.112"

BASE: dict[str, Any] = {
    "info_url": "https://example.com/supported-countries",
    "geoip": {"country_db": CITY_DB, "reload_interval": 0},
    "exempt": {"paths": ["/healthz", "/static/*"], "ips": ["81.2.69.0/24"]},
    "rules": [
        {"name": "cn-api", "action": "block", "regions": ["CN"], "paths": ["/v1/*", "/web/*"]},
        {"name": "ru-forbidden", "action": "block", "regions": ["RU"], "status": 403},
        {
            "name": "ir-grace",
            "action": "block",
            "regions": ["IR"],
            "warn_from": "2020-01-01T00:00:00Z",
            "enforce_from": "2999-01-01T00:00:00Z",
        },
        {"name": "se-report", "action": "block", "regions": ["SE"], "mode": "report"},
    ],
}


def merged(**overrides: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(BASE))
    config.update(overrides)
    return config


@dataclass(frozen=True)
class Scenario:
    id: str
    peer: str
    path: str = "/v1/models"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    config: Mapping[str, Any] = field(default_factory=lambda: BASE)
    # Expected answer.
    status: int = APP_STATUS
    app_called: bool = True  # False: the middleware answered; the view never ran
    body_kind: str = "app"  # "app" | "json" | "html" | "empty"
    json_code: str | None = None  # error.code in a JSON body
    headers_equal: Mapping[str, str] = field(default_factory=dict)  # exact values
    headers_absent: tuple[str, ...] = ()
    body_not_contains: tuple[str, ...] = ()  # e.g. unescaped hostile input
    # What the view saw as the decision (only when app_called): a subset of its fields.
    decision: Mapping[str, Any] = field(default_factory=dict)


BLOCK_HEADERS = {
    "cache-control": "private, no-store",
    "link": '<https://example.com/supported-countries>; rel="blocked-by"',
}
WARN_HEADERS = {
    "sunset": "Tue, 01 Jan 2999 00:00:00 GMT",
    "deprecation": "@1577836800",
    "cache-control": "private, max-age=60",
}
UNTOUCHED = ("sunset", "deprecation")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "allow-us",
        peer=US,
        headers_equal={"cache-control": APP_CACHE_CONTROL},
        headers_absent=UNTOUCHED,
        decision={
            "action": "allow",
            "reason": "default",
            "country": "US",
            "subdivisions": ("US-WA",),
        },
    ),
    Scenario(
        "block-cn-json",
        peer=CN,
        status=451,
        app_called=False,
        body_kind="json",
        json_code="unsupported_country_region_territory",
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "block-cn-html",
        peer=CN,
        path="/web/home",
        headers={"accept": BROWSER_ACCEPT},
        status=451,
        app_called=False,
        body_kind="html",
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "block-cn-curl-accept-any",
        peer=CN,
        headers={"accept": "*/*"},
        status=451,
        app_called=False,
        body_kind="json",
    ),
    Scenario(
        "cn-outside-rule-paths",
        peer=CN,
        path="/about",
        decision={"action": "allow", "reason": "default", "country": "CN"},
    ),
    Scenario(
        "cn-v1-prefix-only-not-v1",
        peer=CN,
        path="/v1",
        decision={"action": "allow", "reason": "default"},
    ),
    Scenario(
        "block-ru-403",
        peer=RU,
        path="/anything",
        status=403,
        app_called=False,
        body_kind="json",
        json_code="unsupported_country_region_territory",
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "head-blocked",
        peer=CN,
        method="HEAD",
        status=451,
        app_called=False,
        body_kind="empty",
        headers_equal={"cache-control": "private, no-store"},
    ),
    Scenario(
        "options-blocked", peer=CN, method="OPTIONS", status=451, app_called=False, body_kind="json"
    ),
    Scenario(
        "post-blocked-body-unread",
        peer=CN,
        method="POST",
        body=b'{"prompt": "hi"}',
        headers={"content-type": "application/json"},
        status=451,
        app_called=False,
        body_kind="json",
    ),
    Scenario(
        "warn-ir-grace",
        peer=IR,
        path="/v1/chat",
        headers_equal=WARN_HEADERS,
        decision={"action": "warn", "enforced": True, "rule": "ir-grace", "country": "IR"},
    ),
    Scenario(
        "report-rule-se-changes-nothing",
        peer=SE,
        headers_equal={"cache-control": APP_CACHE_CONTROL},
        headers_absent=UNTOUCHED,
        decision={"action": "block", "enforced": False, "rule": "se-report"},
    ),
    Scenario(
        "report-mode-cn-changes-nothing",
        peer=CN,
        config=merged(mode="report"),
        headers_equal={"cache-control": APP_CACHE_CONTROL},
        decision={"action": "block", "enforced": False, "rule": "cn-api"},
    ),
    Scenario(
        "report-mode-ir-no-warn-headers",
        peer=IR,
        config=merged(mode="report"),
        headers_equal={"cache-control": APP_CACHE_CONTROL},
        headers_absent=UNTOUCHED,
        decision={"action": "warn", "enforced": False},
    ),
    Scenario(
        "mode-off-passes",
        peer=CN,
        config=merged(mode="off"),
        decision={"action": "allow", "reason": "off"},
    ),
    Scenario(
        "exempt-path",
        peer=CN,
        path="/healthz",
        decision={"action": "allow", "reason": "exempt_path"},
    ),
    Scenario(
        "exempt-path-glob",
        peer=RU,
        path="/static/app.css",
        decision={"action": "allow", "reason": "exempt_path"},
    ),
    Scenario("exempt-ip", peer=GB, decision={"action": "allow", "reason": "exempt_ip"}),
    Scenario(
        "private-peer-allowed",
        peer="10.1.2.3",
        decision={"action": "allow", "reason": "private", "client_ip": "10.1.2.3"},
    ),
    Scenario(
        "forged-xff-ignored-without-trust",
        peer=CN,
        headers={"x-forwarded-for": US},
        status=451,
        app_called=False,
        body_kind="json",
    ),
    Scenario(
        "trusted-proxy-xff",
        peer="10.0.0.5",
        headers={"x-forwarded-for": CN},
        config=merged(client_ip={"trusted_proxies": ["10.0.0.0/8"]}),
        status=451,
        app_called=False,
        body_kind="json",
    ),
    Scenario(
        "trusted-proxy-xff-allowed",
        peer="10.0.0.5",
        headers={"x-forwarded-for": US},
        config=merged(client_ip={"trusted_proxies": ["10.0.0.0/8"]}),
        decision={"action": "allow", "client_ip": US, "country": "US"},
    ),
    Scenario(
        "hostile-path-escaped",
        peer=CN,
        path="/web/<script>alert(1)</script>",
        headers={"accept": BROWSER_ACCEPT},
        status=451,
        app_called=False,
        body_kind="html",
        body_not_contains=("<script>", "GeoIP2-City-Test", CITY_DB),
    ),
    Scenario(
        "hostile-message-escaped",
        peer=CN,
        headers={"accept": BROWSER_ACCEPT},
        config=merged(message="Not here <b>\"&'</b>"),
        status=451,
        app_called=False,
        body_kind="html",
        body_not_contains=("<b>",),
    ),
    Scenario(
        "db-error-fail-closed",
        peer=US,
        config=merged(on_error="block", geoip={"country_db": BAD_RECORD_DB, "reload_interval": 0}),
        status=503,
        app_called=False,
        body_kind="json",
        json_code="geofence_unavailable",
        headers_equal={"cache-control": "no-store", "retry-after": "60"},
    ),
)


def check(
    s: Scenario,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    app_called: bool,
    decision: Any,
) -> None:
    """Assert one scenario's outcome. ``headers`` keys are lower-case."""
    assert status == s.status, (s.id, status, body[:200])
    assert app_called == s.app_called, s.id
    for name, value in s.headers_equal.items():
        assert headers.get(name) == value, (s.id, name, headers.get(name))
    for name in s.headers_absent:
        assert name not in headers, (s.id, name)
    if s.body_kind == "app":
        assert body == (b"" if s.method == "HEAD" else APP_BODY), s.id
    elif s.body_kind == "empty":
        assert body == b"", s.id
    elif s.body_kind == "json":
        assert headers["content-type"].startswith("application/json"), s.id
        doc = json.loads(body)
        assert set(doc) == {"error"}, s.id
        assert doc["error"]["type"] in ("request_forbidden", "service_unavailable"), s.id
        assert doc["error"]["param"] is None
        if s.json_code:
            assert doc["error"]["code"] == s.json_code, s.id
    elif s.body_kind == "html":
        assert headers["content-type"].startswith("text/html"), s.id
        assert b"<html" in body.lower(), s.id
    for needle in s.body_not_contains:
        assert needle.encode() not in body, (s.id, needle)
    if s.app_called:
        assert decision is not None, s.id
        for key, value in s.decision.items():
            assert getattr(decision, key) == value, (s.id, key, getattr(decision, key))
