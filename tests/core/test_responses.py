"""The framework-neutral answers: block page / JSON, the fail-closed 503, warn headers."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofence._model import Decision
from geofence.http import _accept as accept
from geofence.http._httpdate import imf_fixdate, sf_date
from geofence.http._locale import SHIPPED
from geofence.http._responses import (
    TEMPLATE_CSP,
    UNAVAILABLE_MESSAGE,
    Responder,
    Response,
    header_uri,
    merge_cache_control,
    prefers_html,
)

INFO = "https://example.com/supported-countries"
MESSAGE = "This service is not available in your country, region, or territory."
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HOSTILE_MESSAGE = "<script>alert(1)</script> & \"quotes\" 'apostrophes' </p><img src=x>"
HOSTILE_URL = "https://example.com/x?a=\"><script>alert(1)</script>&b='c'"

BLOCK = Decision(
    "block",
    True,
    "rule",
    rule="secret-rule-name",
    client_ip="175.16.199.1",
    country="CN",
    subdivisions=("CN-22",),
    status=451,
    ref="7K2MQ-X9PTW",
)
BLOCK_403 = Decision("block", True, "rule", rule="r", status=403, ref="AB3DE-FG4HJ")
DB_ERROR = Decision(
    "block", True, "db_error", client_ip="81.2.69.142", status=503, ref="00000-ZZZZZ"
)
VARY = "Accept, Accept-Language"


def header(response: Response, name: str) -> str | None:
    values = [v for k, v in response.headers if k.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times"
    return values[0] if values else None


def names(response: Response) -> list[str]:
    return [k for k, _ in response.headers]


def style_hash(page: str) -> str:
    match = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert match is not None
    return base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()


@pytest.fixture
def responder() -> Responder:
    return Responder(MESSAGE, INFO)


# -- block: JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", [BLOCK, BLOCK_403], ids=["451", "403"])
def test_block_json_body_and_headers(responder: Responder, decision: Decision) -> None:
    response = responder.denial(decision, "application/json")
    assert response.status == decision.status
    assert response.html is False
    assert json.loads(response.body) == {
        "error": {
            "code": "unsupported_country_region_territory",
            "message": MESSAGE,
            "type": "request_forbidden",
            "param": None,
            "ref": decision.ref,
        }
    }
    assert header(response, "Content-Type") == "application/json"
    assert header(response, "Content-Length") == str(len(response.body))
    assert header(response, "Cache-Control") == "private, no-store"
    assert header(response, "Link") == f'<{INFO}>; rel="blocked-by"'
    assert header(response, "Vary") == VARY
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "Content-Security-Policy") is None
    # JSON stays English whatever the client reads: it claims no language.
    assert header(response, "Content-Language") is None
    assert header(response, "Retry-After") is None


def test_block_json_keeps_a_hostile_message_verbatim_and_utf8() -> None:
    message = HOSTILE_MESSAGE + " — 不可用 \u2028"
    response = Responder(message, None).denial(BLOCK, None)
    assert json.loads(response.body.decode("utf-8"))["error"]["message"] == message


def test_block_without_info_url_has_no_link() -> None:
    responder = Responder(MESSAGE, None)
    for accept_value in (None, BROWSER):
        response = responder.denial(BLOCK, accept_value)
        assert header(response, "Link") is None
        assert b"More information" not in response.body
        assert response.context["info_url"] is None


def test_unexpected_status_still_blocks_with_451(responder: Responder) -> None:
    response = responder.denial(Decision("block", True, "rule", status=200), None)
    assert response.status == 451


# -- block: HTML ------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", [BLOCK, BLOCK_403], ids=["451", "403"])
def test_block_page_headers_and_content(responder: Responder, decision: Decision) -> None:
    response = responder.denial(decision, BROWSER)
    page = response.body.decode("utf-8")
    assert response.status == decision.status
    assert response.html is True
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    assert header(response, "Content-Length") == str(len(response.body))
    assert header(response, "Cache-Control") == "private, no-store"
    assert header(response, "Link") == f'<{INFO}>; rel="blocked-by"'
    assert header(response, "Vary") == VARY
    assert header(response, "Content-Language") == "en"
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en" dir="ltr">' in page
    assert 'name="viewport"' in page
    assert MESSAGE in page
    assert f"Error {decision.status}" in page
    assert f'<a href="{INFO}" rel="noreferrer">More information</a>' in page
    assert f'<code dir="ltr" translate="no">{decision.ref}</code>' in page
    assert "<title>" in page
    assert "<h1>" in page


def test_block_page_csp_forbids_everything_but_its_own_style(responder: Responder) -> None:
    response = responder.denial(BLOCK, BROWSER)
    csp = header(response, "Content-Security-Policy")
    assert csp is not None
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    # The hash in the header is the hash of the style element actually in the page.
    assert directives["style-src"] == f"'sha256-{style_hash(response.body.decode())}'"
    assert directives["frame-ancestors"] == "'none'"
    assert "script" not in response.body.decode().lower()


def test_template_csp_allows_inline_styles_only() -> None:
    assert "default-src 'none'" in TEMPLATE_CSP
    assert "style-src 'unsafe-inline'" in TEMPLATE_CSP
    assert "script-src" not in TEMPLATE_CSP


def test_block_page_escapes_message_and_info_url() -> None:
    response = Responder(HOSTILE_MESSAGE, HOSTILE_URL).denial(BLOCK, BROWSER)
    page = response.body.decode()
    assert "<script>" not in page
    assert "<img" not in page
    assert "alert(1)" in page  # shown, as text
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &#x27;apostrophes&#x27;"
        in page
    )
    # The href is the percent-encoded URL.
    assert 'href="https://example.com/x?a=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&amp;b=' in page
    # The header cannot be broken out of either.
    link = header(response, "Link")
    assert link is not None
    assert link.count("<") == 1
    assert link.count(">") == 1
    assert '"' not in link.split(";")[0]


def test_block_page_never_links_a_javascript_url() -> None:
    page = Responder(MESSAGE, "javascript:alert(document.cookie)").denial(BLOCK, BROWSER).body
    assert b"<a " not in page
    assert b"javascript:alert(document.cookie)" in page  # shown as plain text


def test_block_page_reflects_nothing_from_the_decision_or_request(responder: Responder) -> None:
    response = responder.denial(BLOCK, BROWSER)
    for secret in (b"secret-rule-name", b"175.16.199.1", b"CN-22", b"CN", b".mmdb"):
        assert secret not in response.body
    # The answer depends only on status, negotiation and the reference: identical for another
    # client with the same reference.
    other = Decision(
        "block", True, "rule", rule="x", client_ip="2a02:d0c0::1", country="RU", ref=BLOCK.ref
    )
    assert responder.denial(other, BROWSER) == response


def test_header_values_never_leave_visible_ascii() -> None:
    responder = Responder("Ünïcödé\r\nX-Evil: 1", "https://exämple.com/a b\r\nSet-Cookie: x=1")
    for decision in (BLOCK, DB_ERROR):
        for accept_value in (None, BROWSER):
            for name, value in responder.denial(decision, accept_value).headers:
                assert re.fullmatch(r"[\x20-\x7e]+", value), (name, value)
    assert header_uri("https://exämple.com/a b\r\n") == "https://ex%C3%A4mple.com/a%20b%0D%0A"
    assert header_uri(INFO) == INFO
    assert header_uri("https://x/a%20b?q=1&r=[2]#f") == "https://x/a%20b?q=1&r=[2]#f"


def test_lone_surrogate_in_message_does_not_break_encoding() -> None:
    responder = Responder("bad \ud800 text", None)
    assert b"bad ? text" in responder.denial(BLOCK, BROWSER).body
    assert json.loads(responder.denial(BLOCK, None).body)["error"]["message"] == "bad ? text"


def test_page_is_small(responder: Responder) -> None:
    # One round trip's worth (TCP's initial window of 10 segments is ~14 kB), in any language.
    for lang in SHIPPED:
        assert len(responder.denial(BLOCK, BROWSER, lang).body) < 4096, lang


# -- precomputation and context ----------------------------------------------------------------


def test_denial_only_picks_a_prebuilt_response(responder: Responder) -> None:
    for d in (BLOCK, BLOCK_403, DB_ERROR):
        for a in (None, BROWSER, "application/json", "*/*"):
            responder.denial(d, a)
    built = dict(responder._built)
    assert len(built) == 6  # 3 statuses x (JSON, HTML)
    for d in (BLOCK, BLOCK_403, DB_ERROR):
        for a in (None, BROWSER, "application/json", "*/*"):
            response = responder.denial(d, a)
            # The headers are the prebuilt tuple itself: nothing rendered per request.
            assert any(response.headers is b.headers for b in built.values())
    assert responder._built == built


def test_context_for_adapters_that_rerender(responder: Responder) -> None:
    html = responder.denial(BLOCK, BROWSER)
    as_json = responder.denial(BLOCK, None)
    expected = {
        "status": 451,
        "code": "unsupported_country_region_territory",
        "message": MESSAGE,
        "info_url": INFO,
        "title": "Not available in your region",
        "heading": "Not available in your region",
        "ref": BLOCK.ref,
        "lang": "en",
        "dir": "ltr",
        "message_lang": None,
        "what_you_can_do": "What you can do",
        "more_information": "More information",
        "advice": "If you think this is a mistake, contact support and give them this reference:",
        "reference_label": "Reference",
        "status_line": "Error 451 · Unavailable For Legal Reasons",
    }
    assert dict(html.context) == expected
    assert dict(as_json.context) == expected
    assert responder.denial(BLOCK_403, BROWSER).context["status"] == 403
    with pytest.raises(TypeError):
        html.context["message"] = "changed"  # type: ignore[index]


# -- db_error: 503 ----------------------------------------------------------------------------


@pytest.mark.parametrize("accept_value", [None, "application/json", BROWSER])
def test_db_error_is_a_503_never_451(responder: Responder, accept_value: str | None) -> None:
    # Even a decision that (wrongly) carries 451 is answered 503 when the cause is the database.
    for decision in (DB_ERROR, DB_ERROR._replace(status=451)):
        response = responder.denial(decision, accept_value)
        assert response.status == 503
        assert header(response, "Retry-After") == "60"
        assert header(response, "Cache-Control") == "no-store"
        assert header(response, "Link") is None
        assert header(response, "Vary") == VARY
        assert header(response, "X-Content-Type-Options") == "nosniff"
        assert header(response, "Content-Length") == str(len(response.body))
        assert response.context["code"] == "geofence_unavailable"
        assert response.context["message"] == UNAVAILABLE_MESSAGE


def test_db_error_bodies(responder: Responder) -> None:
    as_json = responder.denial(DB_ERROR, None)
    assert json.loads(as_json.body) == {
        "error": {
            "code": "geofence_unavailable",
            "message": "This service is temporarily unavailable. Please try again later.",
            "type": "service_unavailable",
            "param": None,
            "ref": DB_ERROR.ref,
        }
    }
    page = responder.denial(DB_ERROR, BROWSER)
    text = page.body.decode()
    assert page.html is True
    assert UNAVAILABLE_MESSAGE in text
    assert "Error 503" in text
    assert MESSAGE not in text  # the block message is about regions, not outages
    assert INFO not in text
    assert header(page, "Content-Security-Policy") is not None


# -- Accept negotiation -------------------------------------------------------------------------

ACCEPT_TABLE = [
    # (Accept, HTML?)
    (BROWSER, True),  # Firefox / Safari
    (
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
        "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
        True,
    ),  # Chrome
    ("text/html", True),
    ("TEXT/HTML", True),
    ("text/*", True),
    ("text/html;q=0.5, application/json;q=0.4", True),
    ("application/json;q=0.1, */*", True),  # html via */* at 1.0 beats json's explicit 0.1
    ("text/html; charset=utf-8", True),
    ("text/html;level=1;q=0.9, */*;q=0.1", True),
    (" text/html ; Q=1 ", True),
    ("*/*", False),  # curl
    (None, False),  # no header
    ("", False),
    ("   ", False),
    ("application/json", False),
    ("application/json, text/plain, */*", False),  # axios: tie goes to JSON
    ("application/*", False),
    ("text/html;q=0", False),
    ("text/html;q=0, */*", False),  # explicitly refused, */* does not override the exact range
    ("text/html;q=0.5, application/json", False),
    ("text/html, application/json", False),  # tie
    ("text/plain", False),
    ("image/webp,*/*", False),  # image request: tie
    ("garbage", False),
    ("text/html;q=abc", False),  # malformed weight: the range is ignored
    ("text/html;q=1.5", False),
    ("text/html;q=-1", False),
    ("text/html;q=0.1234", False),
    ("*/html", False),
    ("text/", False),
    ("/html", False),
    (";;;,,,", False),
    ("text/html\x00", False),
    ("téxt/html", False),
    (",,text/html,,", True),
    ("garbage, text/html", True),
    ("text/html;q=0.5, text/html;q=0.1, application/json;q=0.3", True),  # first exact range counts
]


@pytest.mark.parametrize(("accept_value", "expected"), ACCEPT_TABLE)
def test_accept_negotiation(accept_value: str | None, expected: bool) -> None:
    assert prefers_html(accept_value) is expected


def test_accept_caps_the_number_of_ranges() -> None:
    # text/html beyond the 32nd range is not looked at.
    assert prefers_html("application/json;q=0.1," * 31 + "text/html") is True
    assert prefers_html("application/json;q=0.1," * 32 + "text/html") is False


def test_accept_caps_the_length() -> None:
    padding = "x" * (accept.MAX_LENGTH - len(",text/html"))
    assert prefers_html(padding + ",text/html") is True  # exactly at the limit
    assert prefers_html("text/html," + padding + ",a/b") is True  # the start is read
    # A range cut by the limit ("text/htmlx" -> "text/html") is dropped, not read half.
    assert prefers_html(padding + ",text/htmlx") is False
    assert prefers_html(padding + "x,text/html") is False  # beyond the limit


def test_accept_work_is_bounded_on_huge_headers() -> None:
    huge = "text/html;q=0.5;" + ";" * 1_000_000 + ("a/b," * 200_000)
    # Bounded by what it allocates, not by time (no timed assertions): splitting the whole
    # 1.8 MB value would allocate megabytes; negotiation reads a bounded prefix.
    values = [huge + str(n) for n in range(20)]  # distinct values: no cache help
    tracemalloc.start()
    try:
        for value in values:
            tracemalloc.reset_peak()
            prefers_html(value)
            assert tracemalloc.get_traced_memory()[1] < 64 * 1024
    finally:
        tracemalloc.stop()


def test_accept_cache_is_bounded() -> None:
    for i in range(2000):
        prefers_html(f"text/html;q=0.{i % 1000:03d}, application/json;q=0.5, x/{i}")
    assert len(accept._cache) <= 256
    # Long values are computed but never stored.
    prefers_html("text/html, " + "x/y, " * 500)
    assert all(len(k) <= 1024 for k in accept._cache)


def test_accept_cache_gives_the_same_answers() -> None:
    for accept_value, expected in ACCEPT_TABLE:
        assert prefers_html(accept_value) is expected
        assert prefers_html(accept_value) is expected


# -- warn headers ----------------------------------------------------------------------------

WARN_FROM = datetime(2024, 6, 25, tzinfo=timezone.utc)
ENFORCE_FROM = datetime(2024, 7, 9, tzinfo=timezone.utc)
WARN = Decision("warn", True, "rule", rule="r", warn_from=WARN_FROM, enforce_from=ENFORCE_FROM)


def app_headers(**values: str) -> dict[str, str]:
    return {k.replace("_", "-").lower(): v for k, v in values.items()}


def getter(values: dict[str, str]) -> Callable[[str], str | None]:
    return lambda name: values.get(name.lower())


def test_warn_headers_for_known_dates(responder: Responder) -> None:
    headers = dict(responder.warn_headers(WARN, getter({})))
    assert headers == {
        "Sunset": "Tue, 09 Jul 2024 00:00:00 GMT",
        "Deprecation": "@1719273600",
        "Link": f'<{INFO}>; rel="sunset"',
        "Cache-Control": "private",
    }


def test_warn_headers_each_only_when_known() -> None:
    responder = Responder(MESSAGE, None)
    always = Decision("warn", True, "rule", rule="r")
    assert responder.warn_headers(always, getter({})) == [("Cache-Control", "private")]
    only_enforce = Decision("warn", True, "rule", enforce_from=ENFORCE_FROM)
    assert [n for n, _ in responder.warn_headers(only_enforce, getter({}))] == [
        "Sunset",
        "Cache-Control",
    ]


def test_warn_headers_convert_other_zones_to_gmt(responder: Responder) -> None:
    plus_two = timezone(timedelta(hours=2))
    decision = Decision(
        "warn",
        True,
        "rule",
        warn_from=datetime(2024, 6, 25, 2, 0, tzinfo=plus_two),
        enforce_from=datetime(2024, 7, 9, 2, 0, 0, 999_000, tzinfo=plus_two),
    )
    headers = dict(responder.warn_headers(decision, getter({})))
    assert headers["Sunset"] == "Tue, 09 Jul 2024 00:00:00 GMT"
    assert headers["Deprecation"] == "@1719273600"


def test_warn_link_is_appended_to_the_apps(responder: Responder) -> None:
    existing = '<https://example.com/docs>; rel="help"'
    headers = dict(responder.warn_headers(WARN, getter(app_headers(link=existing))))
    assert headers["Link"] == f'{existing}, <{INFO}>; rel="sunset"'
    # Applied twice (e.g. two middleware layers), the relation is not repeated.
    again = dict(responder.warn_headers(WARN, getter(app_headers(link=headers["Link"]))))
    assert "Link" not in again or again["Link"] == headers["Link"]


def test_warn_cache_control_merges_with_the_apps(responder: Responder) -> None:
    app = app_headers(cache_control="public, max-age=60, s-maxage=300")
    headers = dict(responder.warn_headers(WARN, getter(app)))
    assert headers["Cache-Control"] == "private, max-age=60"


CACHE_CONTROL_TABLE = [
    (None, "private"),
    ("", "private"),
    ("max-age=60", "private, max-age=60"),
    ("public, max-age=60, s-maxage=300", "private, max-age=60"),
    ("no-store", "private, no-store"),
    ("no-store, no-cache, must-revalidate", "private, no-store, no-cache, must-revalidate"),
    ("private", "private"),
    ("private, max-age=0", "private, max-age=0"),
    ("max-age=60, private", "private, max-age=60"),
    ("max-age=60, PRIVATE, private", "private, max-age=60"),
    ("PUBLIC, Max-Age=5", "private, Max-Age=5"),
    ("S-MaxAge=10", "private"),
    ("s-maxage = 10, immutable", "private, immutable"),
    ('private="Set-Cookie", max-age=5', "private, max-age=5"),
    ('no-cache="Set-Cookie, X-Foo", public', 'private, no-cache="Set-Cookie, X-Foo"'),
    (" , ,max-age=1,, ", "private, max-age=1"),
    ("stale-while-revalidate=30, public", "private, stale-while-revalidate=30"),
    ("publicity=1", "private, publicity=1"),  # only the exact directive name is dropped
]


@pytest.mark.parametrize(("app", "expected"), CACHE_CONTROL_TABLE)
def test_cache_control_merge(app: str | None, expected: str) -> None:
    assert merge_cache_control(app) == expected
    assert merge_cache_control(app) == expected  # cached


@pytest.mark.parametrize("junk", ['x="unterminated, public', '"', "\\", '"a\\', "=,=,=", "é"])
def test_cache_control_merge_survives_junk(junk: str) -> None:
    merged = merge_cache_control(junk)
    assert merged.startswith("private")
    assert merged.count("private") == 1


# -- HTTP dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "imf", "sf"),
    [
        (datetime(2024, 7, 9, tzinfo=timezone.utc), "Tue, 09 Jul 2024 00:00:00 GMT", "@1720483200"),
        (
            datetime(2024, 6, 25, tzinfo=timezone.utc),
            "Tue, 25 Jun 2024 00:00:00 GMT",
            "@1719273600",
        ),
        (
            datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc),
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "@784111777",
        ),  # RFC 9110's example
        (
            datetime(2000, 2, 29, 23, 59, 59, 999_999, tzinfo=timezone.utc),
            "Tue, 29 Feb 2000 23:59:59 GMT",
            "@951868799",
        ),
        (
            datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone.utc),
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "@-1",
        ),
    ],
)
def test_http_date_formats(moment: datetime, imf: str, sf: str) -> None:
    assert imf_fixdate(moment) == imf
    assert sf_date(moment) == sf


def test_http_dates_read_naive_times_as_utc() -> None:
    assert imf_fixdate(datetime(2024, 7, 9)) == "Tue, 09 Jul 2024 00:00:00 GMT"
    assert sf_date(datetime(2024, 6, 25)) == "@1719273600"


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(9999, 1, 1),
        timezones=st.just(timezone.utc),
    )
)
def test_imf_fixdate_agrees_with_the_stdlib(moment: datetime) -> None:
    assert imf_fixdate(moment) == email.utils.format_datetime(moment, usegmt=True)
    assert email.utils.parsedate_to_datetime(imf_fixdate(moment)) == moment.replace(microsecond=0)


def test_warn_neutralises_cdn_cache_headers_the_app_sent() -> None:
    from datetime import datetime, timezone

    from geofence import Decision
    from geofence.http._responses import Responder

    decision = Decision(
        "warn", True, "rule", rule="r", enforce_from=datetime(2999, 1, 1, tzinfo=timezone.utc)
    )
    app = {"CDN-Cache-Control": "max-age=3600", "Surrogate-Control": "max-age=600"}
    headers = dict(Responder("m", None).warn_headers(decision, app.get))
    assert headers["CDN-Cache-Control"] == "no-store"
    assert headers["Surrogate-Control"] == "no-store"
    assert "CDN-Cache-Control" not in dict(Responder("m", None).warn_headers(decision, {}.get))
