"""One scenario table, run through every adapter (tests/<framework>/test_scenarios.py).

Each adapter's runner builds its framework's test app around the same tiny view (see APP_*
below), sends the scenario's request with the framework's real test client, and checks
:func:`check`. Differences between adapters are security bugs, so every scenario runs
everywhere.

Accounts: each runner installs its adapter's account hook (:func:`CASES` says when), which
returns :func:`account_from_header` of the request's ``x-test-account`` header, the way an
app maps an API key to its account. A row with an ``account`` sends that header; ``prior``
requests of the same account go first, on the same app and engine (strikes persist in an
engine, so each runner builds a fresh engine for every row whose policy has ``[accounts]``,
and rows use distinct account ids). :func:`check` also compares the adapter's response with
the core's own answer to the same requests (:func:`core_answer`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

import geofence
from geofence.http import TEMPLATE_CSP, Answer

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


# The policy of the account rows: BASE plus [accounts], [strikes], exempt accounts and rules
# on the account's home country (one with account grace).
ACCOUNTS: dict[str, Any] = merged(
    accounts={"store": "memory://", "refresh": "5s"},
    strikes={
        "count": ["block"],
        "threshold": 2,
        "window": "1h",
        "action": "suspend",
        "suspend_for": "1d",
        "status": 403,
    },
    exempt={**BASE["exempt"], "accounts": ["acct-exempt", "@staff"]},
    rules=[
        *BASE["rules"],
        {"name": "home-ru", "action": "block", "home_regions": ["RU"]},
        {
            "name": "home-ir-grace",
            "action": "block",
            "home_regions": ["IR"],
            "account_grace": "14d",
            "enforce_from": "2020-01-01T00:00:00Z",
        },
    ],
)
ACCOUNT_HEADER = "x-test-account"


def account_header(account: geofence.Account | str) -> str:
    """The ``x-test-account`` value that makes the runners' hooks return ``account``."""
    if isinstance(account, str):
        return json.dumps(account)  # the hook returns the plain id string
    fields = {"id": account.id, "home_country": account.home_country, "groups": account.groups}
    return json.dumps(fields)


def account_from_header(value: str | None) -> geofence.Account | str | None:
    """Every runner's account hook: ``x-test-account`` back to what the row's hook returns."""
    if value is None:
        return None
    fields = json.loads(value)
    if isinstance(fields, str):
        return fields
    return geofence.Account(fields["id"], fields["home_country"], groups=tuple(fields["groups"]))


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
    headers_containing: Mapping[str, str] = field(default_factory=dict)  # value holds this
    body_not_contains: tuple[str, ...] = ()  # e.g. unescaped hostile input
    body_contains: tuple[str, ...] = ()  # e.g. the page's <html lang dir>, a translated heading
    json_message: str | None = None  # error.message in a JSON body
    # What the view saw as the decision (only when app_called): a subset of its fields.
    decision: Mapping[str, Any] = field(default_factory=dict)
    # Who sends it, as the adapter's account hook returns it (an Account or a plain id).
    account: geofence.Account | str | None = None
    # (peer, path) of earlier requests of the same account, sent first (their answers unchecked).
    prior: tuple[tuple[str, str], ...] = ()
    # Account grace: Sunset must be the account's own date, about this long from now.
    sunset_in: timedelta | None = None

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.account is not None:
            headers[ACCOUNT_HEADER] = account_header(self.account)
        return headers


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
UNSUPPORTED = "unsupported_country_region_territory"
SUSPENDED_HEADERS = {"cache-control": "private, no-store"}
STRIKES = ((CN, "/v1/models"), (CN, "/v1/models"))  # two blocks: suspended (threshold 2)

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
    # -- accounts ----------------------------------------------------------------------------
    Scenario(
        "accounts-policy-no-account-allowed",
        peer=US,
        config=ACCOUNTS,
        headers_absent=UNTOUCHED,
        decision={"action": "allow", "reason": "default", "account": None},
    ),
    Scenario(
        "accounts-policy-no-account-blocked",
        peer=CN,
        config=ACCOUNTS,
        status=451,
        app_called=False,
        body_kind="json",
        json_code=UNSUPPORTED,
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "account-allowed",
        peer=US,
        config=ACCOUNTS,
        account=geofence.Account("acct-plain", home_country="us"),
        headers_absent=UNTOUCHED,
        decision={"action": "allow", "reason": "default", "account": "acct-plain"},
    ),
    Scenario(
        "account-blocked-by-ip-one-strike",
        peer=CN,
        config=ACCOUNTS,
        account=geofence.Account("acct-cn"),
        status=451,
        app_called=False,
        body_kind="json",
        json_code=UNSUPPORTED,
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "account-suspended-at-threshold",
        peer=CN,
        config=ACCOUNTS,
        account=geofence.Account("acct-striker"),
        prior=STRIKES[:1],
        status=403,
        app_called=False,
        body_kind="json",
        json_code="account_suspended",
        headers_equal=SUSPENDED_HEADERS,
    ),
    Scenario(
        "account-suspended-from-an-allowed-country",
        peer=US,
        path="/v1/other",
        config=ACCOUNTS,
        account=geofence.Account("acct-vpn"),
        prior=STRIKES,
        status=403,
        app_called=False,
        body_kind="json",
        json_code="account_suspended",
        headers_equal=SUSPENDED_HEADERS,
    ),
    Scenario(
        "account-suspended-html-page",
        peer=US,
        headers={"accept": BROWSER_ACCEPT},
        config=ACCOUNTS,
        account=geofence.Account("acct-browser"),
        prior=STRIKES,
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal=SUSPENDED_HEADERS,
    ),
    Scenario(
        "account-suspended-head",
        peer=US,
        method="HEAD",
        config=ACCOUNTS,
        account=geofence.Account("acct-head"),
        prior=STRIKES,
        status=403,
        app_called=False,
        body_kind="empty",
        headers_equal=SUSPENDED_HEADERS,
    ),
    Scenario(
        "account-id-string-suspended",
        peer=US,
        config=ACCOUNTS,
        account="acct-by-id",
        prior=STRIKES,
        status=403,
        app_called=False,
        body_kind="json",
        json_code="account_suspended",
    ),
    Scenario(
        "account-suspended-still-passes-exempt-path",
        peer=US,
        path="/healthz",
        config=ACCOUNTS,
        account=geofence.Account("acct-health"),
        prior=STRIKES,
        decision={"action": "allow", "reason": "exempt_path", "account": "acct-health"},
    ),
    Scenario(
        "account-report-mode-counts-no-strikes",
        peer=CN,
        config={**ACCOUNTS, "mode": "report"},
        account=geofence.Account("acct-report"),
        prior=STRIKES,
        headers_absent=UNTOUCHED,
        decision={"action": "block", "enforced": False, "reason": "rule", "account": "acct-report"},
    ),
    Scenario(
        "account-grace-own-sunset",
        peer=US,
        config=ACCOUNTS,
        account=geofence.Account("acct-grace", home_country="IR"),
        sunset_in=timedelta(days=14),
        headers_equal={"cache-control": "private, max-age=60"},
        headers_absent=("deprecation",),
        decision={
            "action": "warn",
            "enforced": True,
            "reason": "account_grace",
            "rule": "home-ir-grace",
            "account": "acct-grace",
        },
    ),
    Scenario(
        "account-exempt-by-id",
        peer=CN,
        config=ACCOUNTS,
        account=geofence.Account("acct-exempt"),
        headers_absent=UNTOUCHED,
        decision={"action": "allow", "reason": "exempt_account", "account": "acct-exempt"},
    ),
    Scenario(
        "account-exempt-by-group",
        peer=RU,
        path="/anything",
        config=ACCOUNTS,
        account=geofence.Account("acct-staff", groups=("staff",)),
        decision={"action": "allow", "reason": "exempt_account", "account": "acct-staff"},
    ),
    Scenario(
        "account-home-region-blocks-an-allowed-country",
        peer=US,
        config=ACCOUNTS,
        account=geofence.Account("acct-home-ru", home_country="RU"),
        status=451,
        app_called=False,
        body_kind="json",
        json_code=UNSUPPORTED,
        headers_equal=BLOCK_HEADERS,
    ),
    Scenario(
        "account-exempt-ip-before-home-region",
        peer=GB,
        config=ACCOUNTS,
        account=geofence.Account("acct-gb", home_country="RU"),
        decision={"action": "allow", "reason": "exempt_ip", "account": "acct-gb"},
    ),
)


# -- the page: per-rule answers, languages, the reference, the template -----------------------
RU_URL = "https://example.com/russia"
IR_URL = "https://example.com/iran-grace"
RU_MESSAGE = {
    "en": "Our service is not offered in Russia.",
    "ru": "Наш сервис не предоставляется в России.",
    "fa": "سرویس ما در روسیه ارائه نمی‌شود.",
}
TEMPLATE = str(Path(__file__).with_name("blocked_template.html"))
PAGE: dict[str, Any] = merged(
    rules=[
        BASE["rules"][0],
        {
            "name": "ru-own-answer",
            "action": "block",
            "regions": ["RU"],
            "status": 403,
            "code": "ru_not_served",
            "message": RU_MESSAGE,
            "info_url": RU_URL,
        },
        {**BASE["rules"][2], "info_url": IR_URL},
    ],
)
PAGE_TEMPLATE: dict[str, Any] = {**PAGE, "page": {"template": TEMPLATE}}
PAGE_VARY = {"vary": "Accept, Accept-Language"}
FA_PAGE = '<html lang="fa" dir="rtl">'


def browser(language: str) -> dict[str, str]:
    return {"accept": BROWSER_ACCEPT, "accept-language": language}


PAGE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "rule-own-answer-json",
        peer=RU,
        path="/anything",
        config=PAGE,
        status=403,
        app_called=False,
        body_kind="json",
        json_code="ru_not_served",
        json_message=RU_MESSAGE["en"],  # JSON stays English whatever Accept-Language says
        headers={"accept-language": "fa"},
        headers_equal={"link": f'<{RU_URL}>; rel="blocked-by"', **PAGE_VARY},
        headers_absent=("content-language",),
    ),
    Scenario(
        "rule-own-answer-page-fa-rtl",
        peer=RU,
        path="/anything",
        config=PAGE,
        headers=browser("fa-IR,fa;q=0.9,en;q=0.5"),
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal={
            "link": f'<{RU_URL}>; rel="blocked-by"',
            "content-language": "fa",
            **PAGE_VARY,
        },
        body_contains=(FA_PAGE, "سرویس ما در روسیه ارائه نمی‌شود.", "در منطقهٔ شما"),
    ),
    Scenario(
        "rule-own-answer-page-ru",
        peer=RU,
        path="/anything",
        config=PAGE,
        headers=browser("ru-RU,ru;q=0.9"),
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "ru", **PAGE_VARY},
        body_contains=('<html lang="ru" dir="ltr">', RU_MESSAGE["ru"], f'href="{RU_URL}"'),
    ),
    Scenario(
        "rule-own-answer-page-not-in-its-table",
        peer=RU,
        path="/anything",
        config=PAGE,
        headers=browser("zh-CN"),
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "zh-Hans"},
        # The operator wrote no Chinese: their English text, marked English, never a translation.
        body_contains=(
            '<html lang="zh-Hans" dir="ltr">',
            f'lang="en" dir="auto">{RU_MESSAGE["en"]}',
        ),
    ),
    Scenario(
        "page-zh-CN-gets-simplified",
        peer=CN,
        path="/web/home",
        config=PAGE,
        headers=browser("zh-CN,zh;q=0.9,en;q=0.8"),
        status=451,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "zh-Hans", **PAGE_VARY, **BLOCK_HEADERS},
        body_contains=('<html lang="zh-Hans" dir="ltr">', "在您所在的地区不可用"),
    ),
    Scenario(
        "page-zh-HK-gets-traditional",
        peer=CN,
        path="/web/home",
        config=PAGE,
        headers=browser("zh-HK,en;q=0.5"),
        status=451,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "zh-Hant", **PAGE_VARY},
        body_contains=('<html lang="zh-Hant" dir="ltr">', "在您所在的地區無法使用"),
    ),
    Scenario(
        "page-unoffered-language-gets-the-default",
        peer=CN,
        path="/web/home",
        config=PAGE,
        headers=browser("de-DE,de;q=0.9"),
        status=451,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "en", **PAGE_VARY},
        body_contains=('<html lang="en" dir="ltr">', "Not available in your region"),
    ),
    Scenario(
        "head-page-fa",
        peer=CN,
        path="/web/home",
        method="HEAD",
        config=PAGE,
        headers=browser("fa"),
        status=451,
        app_called=False,
        body_kind="empty",
        headers_equal={"content-language": "fa", **PAGE_VARY},
    ),
    Scenario(
        "warn-rule-own-link",
        peer=IR,
        path="/v1/chat",
        config=PAGE,
        headers_equal=WARN_HEADERS,
        # After the app's own Link where the app sends one.
        headers_containing={"link": f'<{IR_URL}>; rel="sunset"'},
        decision={"action": "warn", "rule": "ir-grace"},
    ),
    Scenario(
        "db-error-page-localized",
        peer=US,
        config=merged(on_error="block", geoip={"country_db": BAD_RECORD_DB, "reload_interval": 0}),
        headers=browser("ar"),
        status=503,
        app_called=False,
        body_kind="html",
        headers_equal={"retry-after": "60", "content-language": "ar", **PAGE_VARY},
        body_contains=('<html lang="ar" dir="rtl">', "غير متاح مؤقتًا"),
    ),
    Scenario(
        "template-page-in-every-adapter",
        peer=CN,
        path="/web/home",
        config=PAGE_TEMPLATE,
        headers=browser("fa"),
        status=451,
        app_called=False,
        body_kind="html",
        headers_equal={"content-security-policy": TEMPLATE_CSP, "content-language": "fa"},
        body_contains=(
            '<html lang="fa" dir="rtl" data-test="operator-template">',
            "<h1>در منطقهٔ شما در دسترس نیست</h1>",
            'data-status="451"',
        ),
    ),
    Scenario(
        "template-rule-own-answer",
        peer=RU,
        path="/anything",
        config=PAGE_TEMPLATE,
        headers=browser("ru"),
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal={"content-security-policy": TEMPLATE_CSP},
        body_contains=(f'<a href="{RU_URL}">', RU_MESSAGE["ru"], 'data-status="403"'),
    ),
    Scenario(
        "account-suspended-page-localized",
        peer=US,
        config=ACCOUNTS,
        account=geofence.Account("acct-page-fa"),
        prior=STRIKES,
        headers=browser("fa"),
        status=403,
        app_called=False,
        body_kind="html",
        headers_equal={"content-language": "fa", **SUSPENDED_HEADERS},
        body_contains=(FA_PAGE, "حساب کاربری تعلیق شده است"),
    ),
)
SCENARIOS += PAGE_SCENARIOS


def _case_id(s: Scenario, hooked: bool) -> str:
    return f"{s.id}+hook" if hooked else s.id


#: (scenario, whether the adapter has an account hook): every row without an account twice,
#: without and with a hook (no account = exactly the old behaviour); account rows hooked.
CASES = [
    pytest.param(s, hooked, id=_case_id(s, hooked))
    for s in SCENARIOS
    for hooked in (False, True)
    if hooked or (s.account is None and not s.prior)
]

_CORE: dict[str, Answer] = {}


def core_answer(s: Scenario) -> Answer:
    """What the core answers to the scenario's request (after its prior ones), on a fresh
    engine: the reference every adapter's response must match. Kept for the run, except
    where it holds the time it was made (an account's own Sunset): then made afresh."""
    if s.id not in _CORE or s.sunset_in is not None:
        engine = geofence.Engine.from_config(s.config)
        headers = list(s.request_headers().items())
        account: Any = s.account  # the engine takes an id string too, as the hooks may give
        for peer, path in s.prior:
            engine.answer(geofence.RequestInfo(peer, headers, s.method, path), account=account)
        info = geofence.RequestInfo(s.peer, headers, s.method, s.path)
        _CORE[s.id] = engine.answer(info, account=account)
    return _CORE[s.id]


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
    for name, value in s.headers_containing.items():
        assert value in headers.get(name, ""), (s.id, name, headers.get(name))
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
        if s.json_message is not None:
            assert doc["error"]["message"] == s.json_message, s.id
    elif s.body_kind == "html":
        assert headers["content-type"].startswith("text/html"), s.id
        assert b"<html" in body.lower(), s.id
    for needle in s.body_not_contains:
        assert needle.encode() not in body, (s.id, needle)
    for needle in s.body_contains:
        assert needle.encode() in body, (s.id, needle)
    if s.app_called:
        assert decision is not None, s.id
        for key, value in s.decision.items():
            assert getattr(decision, key) == value, (s.id, key, getattr(decision, key))
    if s.sunset_in is not None:
        # The account's own date: what the decision says, about sunset_in from now.
        assert headers["sunset"] == format_datetime(decision.enforce_from, usegmt=True), s.id
        expected = datetime.now(timezone.utc) + s.sunset_in
        assert abs(parsedate_to_datetime(headers["sunset"]) - expected) < timedelta(minutes=1)
    _check_against_core(s, status, headers, body, decision)


def _check_against_core(
    s: Scenario, status: int, headers: Mapping[str, str], body: bytes, decision: Any
) -> None:
    """Same status, headers and body code as the core's own answer to the same requests."""
    core = core_answer(s)
    if core.response is not None:
        assert status == core.response.status, s.id
        for name, value in core.response.headers:
            assert headers.get(name.lower()) == value, (s.id, name, headers.get(name.lower()))
        # The reference is made with the process's key from the client, rule, reason and
        # account: the core's engine gives the same one, and the body shows it.
        ref = core.decision.ref
        assert ref is not None and len(ref) == 11, s.id
        if s.body_kind == "json":
            assert json.loads(body) == json.loads(core.response.body), s.id
            assert json.loads(body)["error"]["ref"] == ref, s.id
        elif s.body_kind == "html":
            assert body == core.response.body, s.id
            assert f'<code dir="ltr" translate="no">{ref}</code>'.encode() in body or (
                s.config.get("page")  # the operator's template shows it its own way
                and ref.encode() in body
            ), s.id
        return
    assert decision is not None, s.id
    fields = ("action", "enforced", "reason", "rule", "account", "country", "client_ip")
    assert {f: getattr(decision, f) for f in fields} == {
        f: getattr(core.decision, f) for f in fields
    }, s.id
    app_link = APP_LINK if APP_LINK in headers.get("link", "") else None
    app_headers = {"cache-control": APP_CACHE_CONTROL, "link": app_link}
    added = core.headers(lambda name: app_headers.get(name.lower()))
    for name, value in added:
        if name.lower() == "sunset" and s.sunset_in is not None:
            # The account's date was set by another engine, a moment apart.
            seen = parsedate_to_datetime(headers["sunset"])
            assert abs(seen - parsedate_to_datetime(value)) < timedelta(minutes=1), s.id
        else:
            assert headers.get(name.lower()) == value, (s.id, name, headers.get(name.lower()))
    if not added:
        assert "sunset" not in headers, s.id
