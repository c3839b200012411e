"""HTTP hazards, each sent through every adapter (Django, Flask, raw ASGI, Starlette).

Log injection, response splitting, XSS in the block page, cacheable denials, internals in
error pages, and the middleware installed twice. Every hostile request is checked on what
actually leaves the adapter: the log records of the ``geofence`` loggers, the status, every
header and the body.
"""

from __future__ import annotations

import json
import logging
import shutil
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hazard_drivers import (
    ADAPTERS,
    APP_BODY,
    DJANGO_MIDDLEWARE,
    Reply,
    Wire,
    build_only,
    django_ready,
    flask_app,
    send,
    send_django,
    send_flask,
    send_twice_installed,
)

from geofence import ConfigError
from geofence import _logs as logs

DATA = Path(__file__).parent.parent / "data"
CITY_DB = str(DATA / "maxmind" / "test-data" / "GeoIP2-City-Test.mmdb")
# Loads, but the record of 216.160.83.0/24 is malformed: its lookup fails at request time.
BAD_RECORD_DB = DATA / "fixtures" / "GeoIP2-City-bad-record.mmdb"

CN = "175.16.199.1"  # blocked, 451
RU = "2a02:d0c0::1"  # blocked, 403
IR = "2a02:d2c0::1"  # warned (grace period until 2999)
US = "216.160.83.56"  # allowed; a db_error with the bad-record database
PROXY = "10.0.0.5"  # a trusted proxy

INFO_URL = "https://example.com/supported-countries"
# Distinctive, so that seeing one in a response proves a leak.
RULE_NAMES = ("internal-rule-cn-7f3a", "internal-rule-ru-9d2c", "internal-rule-unknown-4e8b")
CONFIG: dict[str, Any] = {
    "info_url": INFO_URL,
    "geoip": {"country_db": CITY_DB, "reload_interval": 0},
    "client_ip": {"trusted_proxies": ["10.0.0.0/8"]},
    "rules": [
        {"name": RULE_NAMES[0], "action": "block", "regions": ["CN"]},
        {"name": RULE_NAMES[1], "action": "block", "regions": ["RU"], "status": 403},
        {"name": RULE_NAMES[2], "action": "block", "regions": ["unknown"]},
        {
            "name": "internal-rule-ir-grace",
            "action": "block",
            "regions": ["IR"],
            "warn_from": "2020-01-01T00:00:00Z",
            "enforce_from": "2999-01-01T00:00:00Z",
        },
    ],
}
BROWSER = ("accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
API = ("accept", b"application/json")

adapters = pytest.mark.parametrize("adapter", ADAPTERS)


def config(**overrides: Any) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(CONFIG))
    copied.update(overrides)
    return copied


@pytest.fixture(autouse=True)
def fresh_error_log() -> Iterator[None]:
    # The db_error record is rate-limited process-wide; every test starts with a clean slate.
    logs.DB_ERRORS.reset()
    yield
    logs.DB_ERRORS.reset()


# -- log injection -------------------------------------------------------------------------

LOG_CASES: dict[str, Wire] = {
    "path-crlf": Wire(CN, "/v1/x%0D%0Ageofence:%20allow%20client_ip=8.8.8.8%20path=%22/%22"),
    "path-lf": Wire(CN, "/v1/x%0Ageofence:%20forged"),
    "path-cr": Wire(CN, "/v1/x%0Dgeofence:%20forged"),
    "path-esc": Wire(CN, "/v1/%1B%5B2J%1B%5B31mred%1B%5D0;title%07"),
    "path-nul-del-c1": Wire(CN, "/v1/a%00b%7Fc%C2%85d%C2%9Be"),
    "path-u2028-u2029": Wire(CN, "/v1/a%E2%80%A8geofence:%20forged%E2%80%A9b"),
    "path-bidi": Wire(CN, "/v1/%E2%80%AEfdp.exe%E2%81%A6x%E2%81%A9%E2%80%8F"),
    "path-backslash-quote": Wire(CN, "/v1/a%5C%22%20rule=%22none"),
    "xff-crlf": Wire(PROXY, headers=(("x-forwarded-for", b"175.16.199.1\r\ngeofence: allow"),)),
    "xff-esc": Wire(PROXY, headers=(("x-forwarded-for", b"\x1b[31m175.16.199.1\x1b[0m"),)),
    "xff-u2028": Wire(PROXY, headers=(("x-forwarded-for", "175.16.199.1\u2028x".encode()),)),
    "xff-junk-left-of-client": Wire(
        PROXY, headers=(("x-forwarded-for", b"evil\r\n\x1b[2J\x00, 175.16.199.1"),)
    ),
    "host-crlf-esc": Wire(CN, host=b"evil.example\r\ngeofence: allow\x1b[0m"),
    "host-u2028": Wire(CN, host="evil\u2028.example".encode()),
    "other-headers": Wire(
        CN,
        headers=(
            ("user-agent", b"curl\r\ngeofence: allow\x1b[0m"),
            ("referer", "https://x/\u2028\u202e".encode()),
            ("accept", b"*/*\r\n\x00"),
        ),
    ),
    "method-esc": Wire(CN, method="GE\x1b[0mT"),
    "warn-path-crlf": Wire(IR, "/v1/x%0D%0Ageofence:%20block%1B[0m"),
    # 100 KB of path: the record keeps a bounded prefix, so a client cannot fill the disk
    # at the rate of its requests.
    "path-huge": Wire(CN, "/v1/" + "%0A%1B" * 50_000),
}
# What may never reach a log line as itself: controls (C0, DEL, C1), line and paragraph
# separators, lone surrogates, and the bidi controls that reorder what a terminal shows.
# Written from the Unicode categories, independently of geofence.logs.
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") or ch in BIDI]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def geofence_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "geofence" or r.name.startswith("geofence.")]


@adapters
@pytest.mark.parametrize("case", LOG_CASES)
def test_log_injection(adapter: str, case: str, caplog: pytest.LogCaptureFixture) -> None:
    wire = LOG_CASES[case]
    caplog.set_level(logging.INFO, logger="geofence")
    reply = send(adapter, CONFIG, wire)
    records = geofence_records(caplog)
    decisions = [r for r in records if "action" in getattr(r, "geofence", {})]
    # Positive control: the request was decided and logged, so the check below has a subject.
    assert len(decisions) == 1, [r.getMessage() for r in records]
    expected = "warn" if wire.peer == IR else "block"
    assert decisions[0].getMessage().startswith(f"{expected} "), decisions[0]
    # A warned request reaches the app, whose router may not know a path with CR/LF in it.
    assert (reply.status == 451) is (expected == "block")
    for record in records:
        message = record.getMessage()
        assert unsafe(message) == [], (record.name, message)
        assert len(message) < 4096
        assert unsafe(logging.Formatter().format(record)) == []
        for text in strings(getattr(record, "geofence", None)):
            assert unsafe(text) == [], (record.name, text)


# -- response splitting: configured text with CR/LF is refused at config time ---------------

SPLITTING: list[tuple[str, str]] = [
    ("message", "Blocked.\r\nSet-Cookie: session=stolen"),
    ("message", "Blocked.\nX-Injected: 1"),
    ("message", "Blocked.\rX-Injected: 1"),
    ("message", "Blocked.\x00"),
    ("message", "Blocked.\x85X-Injected: 1"),  # NEL
    ("message", "Blocked.\u2028X-Injected: 1"),
    ("info_url", "https://example.com/\r\nSet-Cookie: session=stolen"),
    ("info_url", "https://example.com/a\nb"),
    ("info_url", "https://example.com/a\rb"),
    ("info_url", "https://example.com/a\tb"),
    ("info_url", "https://example.com/a b"),
    ("info_url", "https://example.com/\x00"),
    ("info_url", "https://example.com/\u2028"),
    ("info_url", 'https://example.com/">; rel="x'),
    ("info_url", "https://example.com/><script>alert(1)</script>"),
    ("info_url", "javascript:alert(1)"),
]


def load_error(adapter: str, cfg: dict[str, Any]) -> ConfigError:
    with pytest.raises(Exception) as caught:  # the type depends on the adapter
        build_only(adapter, cfg)
    error = caught.value
    if adapter == "django":
        # Django turns it into ImproperlyConfigured (PolicyError), keeping the ConfigError.
        from django.core.exceptions import ImproperlyConfigured

        assert isinstance(error, ImproperlyConfigured)
        error = error.config_error  # type: ignore[attr-defined]
    assert type(error) is ConfigError, repr(error)
    return error


@adapters
@pytest.mark.parametrize(("key", "value"), SPLITTING, ids=lambda v: repr(v)[:40])
def test_response_splitting_refused_at_config_time(adapter: str, key: str, value: str) -> None:
    error = load_error(adapter, config(**{key: value}))
    assert error.key == key
    # The error text goes to a terminal or a log: it must not carry the raw characters either.
    assert unsafe(str(error)) == []


@adapters
def test_percent_encoded_crlf_in_info_url_stays_encoded(adapter: str) -> None:
    url = "https://example.com/a%0D%0ASet-Cookie:%20session=stolen?q=%3Cscript%3E"
    reply = send(adapter, config(info_url=url), Wire(CN, headers=(BROWSER,)))
    assert reply.status == 451
    assert reply.all("link") == [f'<{url}>; rel="blocked-by"']
    assert reply.all("set-cookie") == []
    for name, value in reply.headers:
        assert unsafe(name + value) == []
    assert b"<script" not in reply.body
    assert f'href="{url}"'.encode() in reply.body


# -- XSS: nothing from the request, and nothing unescaped from the config, in the page -----

PAYLOAD = '"><script>alert("gf-xss")</script><img src=x onerror=alert(1)>'
# '"><' alone is ordinary markup between two elements; the payload's break-out is '"><s' / '"><i'.
RAW_MARKERS = (b"<script", b"<img", b"onerror=alert(1)>", b'"><script', b'"><img')
XSS_CASES: dict[str, Wire] = {
    "path": Wire(CN, "/v1/%22%3E%3Cscript%3Ealert(%22gf-xss%22)%3C/script%3E", headers=(BROWSER,)),
    "path-img": Wire(RU, "/x/%3Cimg%20src=x%20onerror=alert(1)%3E", headers=(BROWSER,)),
    "host": Wire(CN, headers=(BROWSER,), host=PAYLOAD.encode()),
    "user-agent-referer": Wire(
        CN, headers=(BROWSER, ("user-agent", PAYLOAD.encode()), ("referer", PAYLOAD.encode()))
    ),
    "accept": Wire(CN, headers=(("accept", b"text/html;q=1, " + PAYLOAD.encode()),)),
    "xff-from-proxy": Wire(PROXY, headers=(BROWSER, ("x-forwarded-for", PAYLOAD.encode()))),
    "xff-left-of-client": Wire(
        PROXY, headers=(BROWSER, ("x-forwarded-for", PAYLOAD.encode() + b", 175.16.199.1"))
    ),
}


@adapters
@pytest.mark.parametrize("case", XSS_CASES)
def test_block_page_never_echoes_the_request(adapter: str, case: str) -> None:
    reply = send(adapter, CONFIG, XSS_CASES[case])
    assert reply.status in (451, 403)
    assert (reply.header("content-type") or "").startswith("text/html")
    assert b"<html" in reply.body
    for marker in RAW_MARKERS:
        assert marker not in reply.body, marker
    assert b"gf-xss" not in reply.body  # not even escaped: the page shows no request data
    for _, value in reply.headers:
        assert "gf-xss" not in value and "<script" not in value


@adapters
@pytest.mark.parametrize("accept", [BROWSER, API], ids=["html", "json"])
def test_hostile_message_is_escaped(adapter: str, accept: tuple[str, bytes]) -> None:
    message = "Sorry & goodbye " + PAYLOAD + " 'quoted' \u202eevil"
    reply = send(adapter, config(message=message), Wire(CN, headers=(accept,)))
    assert reply.status == 451
    if accept is API:
        assert reply.header("content-type") == "application/json"
        assert reply.header("x-content-type-options") == "nosniff"
        assert json.loads(reply.body)["error"]["message"] == message
        return
    for marker in RAW_MARKERS:
        assert marker not in reply.body, marker
    # Positive control: the message is shown, escaped.
    assert b"&lt;script&gt;alert(&quot;gf-xss&quot;)&lt;/script&gt;" in reply.body
    assert b"Sorry &amp; goodbye" in reply.body
    assert "default-src 'none'" in (reply.header("content-security-policy") or "")


# -- caching: a denial is never stored by a shared cache; a warning is private ---------------


def cache_directives(reply: Reply) -> dict[str, str]:
    values = reply.all("cache-control")
    assert len(values) == 1, values
    directives = {}
    for part in values[0].split(","):
        name, _, argument = part.strip().partition("=")
        directives[name.lower()] = argument
    return directives


def assert_never_shared_cacheable(reply: Reply) -> None:
    directives = cache_directives(reply)
    assert "no-store" in directives, directives
    for forbidden in ("public", "s-maxage", "must-understand"):
        assert forbidden not in directives, directives
    assert directives.get("max-age", "0") == "0", directives
    now = datetime.now(timezone.utc)
    for expires in reply.all("expires"):
        try:
            moment = parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            continue  # an invalid date means "already expired" (RFC 9111 5.3)
        assert moment <= now, expires


def bad_record_config(tmp_path: Path, on_error: str = "block") -> tuple[dict[str, Any], Path]:
    folder = tmp_path / "secret-geo-dir-5b1e"
    folder.mkdir(exist_ok=True)
    db = folder / "Private-Geo-Data.mmdb"
    shutil.copy(BAD_RECORD_DB, db)
    return config(on_error=on_error, geoip={"country_db": str(db), "reload_interval": 0}), db


DENIALS = [
    # (id, peer, status)
    ("451", CN, 451),
    ("403", RU, 403),
    ("503", US, 503),
]


@adapters
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("accept", [BROWSER, API], ids=["html", "json"])
@pytest.mark.parametrize(("peer", "status"), [d[1:] for d in DENIALS], ids=[d[0] for d in DENIALS])
def test_denials_are_never_cacheable(
    adapter: str,
    method: str,
    accept: tuple[str, bytes],
    peer: str,
    status: int,
    tmp_path: Path,
) -> None:
    cfg = bad_record_config(tmp_path)[0] if status == 503 else CONFIG
    reply = send(adapter, cfg, Wire(peer, method=method, headers=(accept,)))
    assert reply.status == status
    assert reply.decisions == []  # the app never ran
    assert_never_shared_cacheable(reply)
    if status == 503:
        assert reply.header("retry-after") == "60"
    if method == "HEAD":
        assert reply.body == b""
        assert int(reply.header("content-length") or 0) > 0  # the GET answer's length
    else:
        kind = "text/html" if accept is BROWSER else "application/json"
        assert (reply.header("content-type") or "").startswith(kind)


def test_flask_denial_stays_uncacheable_after_a_hostile_hook() -> None:
    """An app hook that makes every response publicly cacheable (Cache-Control, Expires,
    CDN-Cache-Control, Surrogate-Control) runs before geofence's, which puts the denial's own
    headers back and drops the rest: an HTTP/1.0 cache honours Expires, a CDN its own field."""
    app = flask_app(CONFIG, hostile_hook=True)
    reply = send_flask(CONFIG, Wire(CN), app)
    assert reply.status == 451
    assert_never_shared_cacheable(reply)
    assert reply.all("cdn-cache-control") == [] and reply.all("surrogate-control") == []
    # Positive control: the hook does run, on responses geofence lets through.
    allowed = send_flask(CONFIG, Wire(US), app)
    assert allowed.all("expires") == ["Fri, 01 Jan 2100 00:00:00 GMT"]
    assert allowed.all("cdn-cache-control") == ["max-age=86400"]


@adapters
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_warned_response_is_made_private(adapter: str, method: str) -> None:
    reply = send(adapter, CONFIG, Wire(IR, method=method))
    assert reply.status == 200
    assert len(reply.decisions) == 1 and reply.decisions[0].action == "warn"
    directives = cache_directives(reply)
    # The app sent "public, max-age=600, s-maxage=600".
    assert "private" in directives
    assert "public" not in directives and "s-maxage" not in directives
    assert directives.get("max-age") == "600"  # a browser may still keep it
    assert reply.all("sunset") == ["Tue, 01 Jan 2999 00:00:00 GMT"]
    assert reply.body == (b"" if method == "HEAD" else APP_BODY)


@adapters
def test_warned_response_is_not_cdn_cacheable(adapter: str) -> None:
    reply = send(adapter, CONFIG, Wire(IR))
    assert reply.status == 200 and reply.decisions[0].action == "warn"
    assert "private" in cache_directives(reply)  # what a CDN would obey, if left alone
    # A CDN obeys these instead of Cache-Control: they must forbid storing, or be absent.
    assert set(reply.all("cdn-cache-control")) <= {"no-store"}
    assert set(reply.all("surrogate-control")) <= {"no-store"}


@adapters
def test_allowed_response_is_untouched(adapter: str) -> None:
    reply = send(adapter, CONFIG, Wire(US))
    assert reply.status == 200
    assert reply.all("cache-control") == ["public, max-age=600, s-maxage=600"]
    assert reply.all("cdn-cache-control") == ["max-age=600"]
    assert reply.all("sunset") == [] and reply.all("link") == []


# -- error pages show no internals ---------------------------------------------------------


@adapters
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("accept", [BROWSER, API], ids=["html", "json"])
@pytest.mark.parametrize(("peer", "status"), [d[1:] for d in DENIALS], ids=[d[0] for d in DENIALS])
def test_error_pages_show_no_internals(
    adapter: str,
    method: str,
    accept: tuple[str, bytes],
    peer: str,
    status: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg, db = bad_record_config(tmp_path) if status == 503 else (CONFIG, Path(CITY_DB))
    caplog.set_level(logging.INFO, logger="geofence")
    # A browser-ish request from the peer, so that the page could show what it would leak.
    reply = send(adapter, cfg, Wire(peer, method=method, headers=(accept,)))
    assert reply.status == status
    secrets = [
        str(db),
        db.name,
        db.parent.name,
        db.stem,
        "mmdb",
        "Traceback",
        "Error:",
        "DatabaseError",
        "malformed",
        "12345",  # the bad record's country code
        "maxminddb",
        "geofence.",
        peer,
        *RULE_NAMES,
        "internal-rule",
    ]
    shown = reply.body.decode("utf-8") + "\n".join(f"{k}: {v}" for k, v in reply.headers)
    for secret in secrets:
        assert secret not in shown, secret
    if status == 503:
        # Positive control: the operator does get the cause, in the log.
        [error] = [r for r in geofence_records(caplog) if r.levelno == logging.ERROR]
        assert "malformed record: country iso_code 12345" in error.getMessage()


# -- installed twice: one decision, one log record, headers added once ---------------------


@adapters
@pytest.mark.parametrize(
    ("peer", "verb", "status"), [(CN, "block", 451), (IR, "warn", 200), (RU, "block", 403)]
)
def test_installed_twice_decides_once(
    adapter: str, peer: str, verb: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="geofence")
    reply = send_twice_installed(adapter, CONFIG, Wire(peer, target="/v1/x"))
    assert reply.status == status
    records = [r for r in geofence_records(caplog) if "action" in getattr(r, "geofence", {})]
    assert [r.getMessage().split()[0] for r in records] == [verb]
    if verb == "warn":
        assert len(reply.decisions) == 1 and reply.decisions[0].action == "warn"
        assert reply.all("sunset") == ["Tue, 01 Jan 2999 00:00:00 GMT"]
        assert reply.all("deprecation") == ["@1577836800"]
        assert reply.all("link") == [f'<{INFO_URL}>; rel="sunset"']
        assert reply.all("cache-control") == ["private, max-age=600"]
    else:
        assert reply.decisions == []
        assert reply.all("cache-control") == ["private, no-store"]
        assert reply.all("link") == [f'<{INFO_URL}>; rel="blocked-by"']


@adapters
def test_installed_twice_allows_once(adapter: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="geofence")
    reply = send_twice_installed(adapter, CONFIG, Wire(US))
    assert reply.status == 200
    assert len(reply.decisions) == 1 and reply.decisions[0].reason == "default"
    assert reply.all("cache-control") == ["public, max-age=600, s-maxage=600"]
    assert [r for r in geofence_records(caplog) if r.levelno >= logging.WARNING] == []


# -- a shared cache inside the app: Django's per-site cache --------------------------------


def test_django_site_cache_never_stores_a_denial_or_a_warning() -> None:
    """Django's per-site cache is a shared cache keyed on the URL only. With geofence between
    UpdateCacheMiddleware and FetchFromCacheMiddleware (the order the README gives), a page
    cached for an allowed client is never served to a blocked one, and neither a denial nor a
    warned (now private) page is ever stored."""
    django_ready()
    from django.core.cache import cache

    middleware = [
        "django.middleware.cache.UpdateCacheMiddleware",
        DJANGO_MIDDLEWARE,
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    cache.clear()
    try:
        url = "/v1/cached-page"
        first = send_django(CONFIG, Wire(US, url), middleware=middleware)
        assert first.status == 200 and len(first.decisions) == 1
        cached = send_django(CONFIG, Wire(US, url), middleware=middleware)
        assert cached.status == 200 and cached.decisions == []  # served from the cache
        blocked = send_django(CONFIG, Wire(CN, url), middleware=middleware)
        assert blocked.status == 451
        assert send_django(CONFIG, Wire(US, url), middleware=middleware).status == 200
        for _ in range(2):  # a warned page is private: never stored, the view runs each time
            warned = send_django(CONFIG, Wire(IR, "/v1/warned"), middleware=middleware)
            assert warned.status == 200 and len(warned.decisions) == 1
        for _ in range(2):
            assert send_django(CONFIG, Wire(CN, "/v1/blocked"), middleware=middleware).status == 451
        after = send_django(CONFIG, Wire(US, "/v1/blocked"), middleware=middleware)
        assert after.status == 200 and len(after.decisions) == 1  # no stored 451 served
    finally:
        cache.clear()


def test_nested_asgi_middleware_with_another_policy_is_not_ignored() -> None:
    """E.g. an app-wide policy plus a stricter one on a mounted API: the API's rules must
    still apply (or the setup be refused), never be skipped without a word."""
    import asyncio

    from hazard_drivers import call_asgi, raw_app

    from geofence_asgi import GeofenceMiddleware

    seen: list[Any] = []
    strict = GeofenceMiddleware(raw_app(seen), config=CONFIG)
    lenient = config(rules=[])
    app = GeofenceMiddleware(strict, config=lenient)
    status, _, _ = asyncio.run(call_asgi(app, Wire(CN)))
    assert status == 451
    assert seen == []
