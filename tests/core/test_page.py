"""The page and the JSON error from a loaded policy: per-rule answers, the page's language, the
reference, the operator's template (DESIGN "HTTP behaviour")."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import geofence
from geofence._model import Decision
from geofence.config import DEFAULT_MESSAGE
from geofence.http._locale import SHIPPED
from geofence.http._page import PAGE_CSP, STYLE, TEMPLATE_CSP
from geofence.http._responses import RESPONSE_CACHE_SIZE, Responder, Response

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
POLICY_URL = "https://example.com/supported-countries"
VPN_URL = "https://example.com/vpn-policy"
REF = "7K2MQ-X9PTW"
OTHER_REF = "ABCDE-12345"

CONFIG: dict[str, Any] = {
    "info_url": POLICY_URL,
    "rules": [
        {
            "name": "vpn",
            "action": "block",
            "regions": ["*"],
            "paths": ["/vpn/*"],
            "code": "vpn_not_allowed",
            "message": {
                "en": "VPNs are not allowed.",
                "fa": "استفاده از وی‌پی‌ان مجاز نیست.",
                "es": "No se permiten VPN.",
            },
            "info_url": VPN_URL,
        },
        {"name": "code-only", "action": "block", "regions": ["RU"], "code": "ru_blocked"},
        {"name": "text-only", "action": "block", "regions": ["IR"], "message": "Nope <b>&</b>"},
        {"name": "plain", "action": "block", "regions": ["CN"]},
        {
            "name": "grace",
            "action": "block",
            "regions": ["KP"],
            "warn_from": "2020-01-01T00:00:00Z",
            "enforce_from": "2999-01-01T00:00:00Z",
            "info_url": VPN_URL,
        },
    ],
}


def responder(**overrides: Any) -> Responder:
    return Responder(geofence.load_policy({**CONFIG, **overrides}))


def block(rule: str, ref: str | None = REF, status: int = 451) -> Decision:
    return Decision("block", True, "rule", rule=rule, status=status, ref=ref)


SUSPENDED = Decision("block", True, "account_suspended", status=403, ref=REF)
UNAVAILABLE = Decision("block", True, "db_error", status=503, ref=REF)


def header(response: Response, name: str) -> str | None:
    values = [v for k, v in response.headers if k.lower() == name.lower()]
    assert len(values) <= 1, name
    return values[0] if values else None


class Page(HTMLParser):
    """What a reader of the page sees: <html> attributes, texts by element, links."""

    def __init__(self, body: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.html: dict[str, str | None] = {}
        self.texts: dict[str, list[str]] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.links: list[tuple[str | None, str]] = []
        self._open: list[str] = []
        self.feed(body.decode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.html = dict(attrs)
        klass = dict(attrs).get("class")
        key = f"{tag}.{klass}" if klass else tag
        if tag not in ("meta", "br"):
            self._open.append(key)
        self.attrs.setdefault(key, dict(attrs))
        if tag == "a":
            self.links.append((dict(attrs).get("href"), ""))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1].partition(".")[0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if not self._open:
            return
        key = self._open[-1]
        tag = key.partition(".")[0]
        self.texts.setdefault(key, []).append(data)
        if key != tag:
            self.texts.setdefault(tag, []).append(data)
        if tag == "a":
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)

    def text(self, tag: str) -> str:
        return "".join(self.texts.get(tag, []))


# -- per-rule answers ---------------------------------------------------------------------------


def test_a_rule_answers_with_its_own_code_message_and_link() -> None:
    response = responder().denial(block("vpn"), "application/json")
    assert json.loads(response.body) == {
        "error": {
            "code": "vpn_not_allowed",
            "message": "VPNs are not allowed.",  # JSON stays English
            "type": "request_forbidden",
            "param": None,
            "ref": REF,
        }
    }
    assert header(response, "Link") == f'<{VPN_URL}>; rel="blocked-by"'


@pytest.mark.parametrize(
    ("rule", "code", "message", "link"),
    [
        ("code-only", "ru_blocked", DEFAULT_MESSAGE, POLICY_URL),
        ("text-only", "unsupported_country_region_territory", "Nope <b>&</b>", POLICY_URL),
        ("plain", "unsupported_country_region_territory", DEFAULT_MESSAGE, POLICY_URL),
        # A decision whose rule is unknown to the policy (not from this engine): the policy's.
        ("not-a-rule", "unsupported_country_region_territory", DEFAULT_MESSAGE, POLICY_URL),
    ],
)
def test_what_a_rule_does_not_set_is_the_policys(
    rule: str, code: str, message: str, link: str
) -> None:
    error = json.loads(responder().denial(block(rule), None).body)["error"]
    assert (error["code"], error["message"]) == (code, message)
    assert header(responder().denial(block(rule), None), "Link") == f'<{link}>; rel="blocked-by"'


def test_a_rule_link_without_a_policy_link() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "info_url"}
    answers = Responder(geofence.load_policy(config))
    assert header(answers.denial(block("vpn"), None), "Link") == f'<{VPN_URL}>; rel="blocked-by"'
    assert header(answers.denial(block("plain"), None), "Link") is None
    assert b"<a " not in answers.denial(block("plain"), BROWSER).body


def test_warn_link_is_the_rules() -> None:
    answers = responder()
    warn = Decision("warn", True, "rule", rule="grace", ref=REF)
    assert dict(answers.warn_headers(warn, {}.get))["Link"] == f'<{VPN_URL}>; rel="sunset"'
    other = Decision("warn", True, "rule", rule="plain", ref=REF)
    assert dict(answers.warn_headers(other, {}.get))["Link"] == f'<{POLICY_URL}>; rel="sunset"'


def test_suspended_and_unavailable_keep_their_codes_whatever_the_rule() -> None:
    answers = responder()
    suspended = json.loads(answers.denial(SUSPENDED._replace(rule="vpn"), None).body)["error"]
    assert suspended["code"] == "account_suspended"
    assert suspended["ref"] == REF
    unavailable = answers.denial(UNAVAILABLE._replace(rule="vpn"), None)
    error = json.loads(unavailable.body)["error"]
    assert (error["code"], error["type"], error["ref"]) == (
        "geofence_unavailable",
        "service_unavailable",
        REF,
    )
    assert header(unavailable, "Link") is None


# -- the reference --------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, BROWSER])
def test_each_response_carries_its_own_reference_at_a_constant_length(accept: str | None) -> None:
    answers = responder()
    first = answers.denial(block("vpn", REF), accept, "fa")
    second = answers.denial(block("vpn", OTHER_REF), accept, "fa")
    for response, ref in ((first, REF), (second, OTHER_REF)):
        assert ref.encode() in response.body
        assert response.context["ref"] == ref
        assert header(response, "Content-Length") == str(len(response.body))
    assert len(first.body) == len(second.body)
    assert first.body.replace(REF.encode(), OTHER_REF.encode()) == second.body


def test_the_page_shows_the_reference_to_copy() -> None:
    page = Page(responder().denial(block("vpn"), BROWSER).body)
    assert page.text("code") == REF
    assert page.attrs["code"] == {"dir": "ltr", "translate": "no"}
    assert "user-select:all" in STYLE
    assert "monospace" in STYLE


def test_a_decision_without_a_reference_still_gets_a_valid_response() -> None:
    answers = responder()
    as_json = answers.denial(block("vpn", ref=None), None)
    assert json.loads(as_json.body)["error"]["ref"] is None
    assert header(as_json, "Content-Length") == str(len(as_json.body))
    page = answers.denial(block("vpn", ref=None), BROWSER)
    assert header(page, "Content-Length") == str(len(page.body))
    assert Page(page.body).text("code") == ""


@pytest.mark.parametrize("ref", ["<script>", 'x"y', "a" * 11, "7k2mq-x9ptw", "\u00e9" * 11])
def test_a_reference_not_made_by_geofence_is_escaped(ref: str) -> None:
    answers = responder()
    as_json = answers.denial(block("vpn", ref=ref), None)
    assert json.loads(as_json.body)["error"]["ref"] == ref
    assert header(as_json, "Content-Length") == str(len(as_json.body))
    page = answers.denial(block("vpn", ref=ref), BROWSER)
    assert b"<script>" not in page.body
    assert Page(page.body).text("code") == ref
    assert header(page, "Content-Length") == str(len(page.body))


def test_responses_given_are_kept_in_a_bounded_cache() -> None:
    answers = responder()
    first = answers.denial(block("vpn"), BROWSER, "fa")
    assert answers.denial(block("vpn"), BROWSER, "fa") is first  # a client retrying: one lookup
    for n in range(RESPONSE_CACHE_SIZE + 10):
        ref = f"{n:05d}-AAAAA"
        assert ref.encode() in answers.denial(block("vpn", ref), BROWSER, "fa").body
    assert len(answers._responses) <= RESPONSE_CACHE_SIZE
    assert len(answers._seen) <= RESPONSE_CACHE_SIZE
    # Header spellings are keys too (bounded the same way), long values never are.
    for n in range(RESPONSE_CACHE_SIZE + 10):
        response = answers.denial(block("vpn"), BROWSER, f"fa;q=0.{n % 999 + 1:03d}, x-{n}")
        assert header(response, "Content-Language") == "fa"
    assert len(answers._seen) <= RESPONSE_CACHE_SIZE
    long_header = "fa, " + "x, " * 600
    answers.denial(block("vpn"), BROWSER, long_header)
    assert all(len(key[5] or "") <= 1024 for key in answers._seen)
    # The same answer whatever the spelling: one response object per reference and language.
    assert answers.denial(block("vpn"), BROWSER, "fa") is answers.denial(
        block("vpn"), "text/html", "fa-IR"
    )
    # The prebuilt denials are bounded by the policy, not by requests.
    assert len(answers._built) == 1


# -- the page's language -------------------------------------------------------------------------

NEGOTIATION = [
    # (Accept-Language, page language, direction)
    (None, "en", "ltr"),
    ("", "en", "ltr"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans", "ltr"),
    ("zh-HK,en;q=0.5", "zh-Hant", "ltr"),
    ("zh-TW", "zh-Hant", "ltr"),
    ("zh-SG", "zh-Hans", "ltr"),
    ("zh", "zh-Hans", "ltr"),
    ("fa-IR,fa;q=0.9", "fa", "rtl"),
    ("ar-EG", "ar", "rtl"),
    ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru", "ltr"),
    ("uk", "uk", "ltr"),
    ("es-419", "es", "ltr"),
    ("ko-KR", "ko", "ltr"),
    ("de-DE,de;q=0.9", "en", "ltr"),  # not offered: the default language
    ("de, fa;q=0.1", "fa", "rtl"),
    ("*", "en", "ltr"),
    ("garbage;;;", "en", "ltr"),
]


@pytest.mark.parametrize(("accept_language", "lang", "direction"), NEGOTIATION)
def test_the_page_language_headers_and_direction(
    accept_language: str | None, lang: str, direction: str
) -> None:
    response = responder().denial(block("plain"), BROWSER, accept_language)
    assert header(response, "Content-Language") == lang
    assert header(response, "Vary") == "Accept, Accept-Language"
    page = Page(response.body)
    assert page.html == {"lang": lang, "dir": direction}
    assert response.context["lang"] == lang
    assert response.context["dir"] == direction


def test_json_varies_on_both_but_claims_no_language() -> None:
    response = responder().denial(block("vpn"), "application/json", "fa")
    assert header(response, "Vary") == "Accept, Accept-Language"
    assert header(response, "Content-Language") is None
    assert json.loads(response.body)["error"]["message"] == "VPNs are not allowed."


def test_one_language_offered_then_accept_language_changes_nothing() -> None:
    answers = responder(page={"languages": ["es"]})
    for accept_language in (None, "fa", "zh-CN"):
        response = answers.denial(block("vpn"), BROWSER, accept_language)
        assert header(response, "Vary") == "Accept"
        assert header(response, "Content-Language") == "es"
        assert "No se permiten VPN." in response.body.decode()


def test_default_language_is_the_fallback() -> None:
    answers = responder(page={"languages": ["en", "fa", "es"], "default_language": "es"})
    response = answers.denial(block("plain"), BROWSER, "de")
    assert header(response, "Content-Language") == "es"
    # zh-Hant is shipped but not offered here.
    assert header(answers.denial(block("plain"), BROWSER, "zh-HK"), "Content-Language") == "es"


def test_fixed_words_come_from_the_catalogue() -> None:
    page = Page(responder().denial(block("plain"), BROWSER, "zh-CN").body)
    assert page.text("h1") == "在您所在的地区不可用"
    assert page.text("title") == page.text("h1")
    fa = Page(responder().denial(block("plain"), BROWSER, "fa").body)
    assert fa.text("h1") == "در منطقهٔ شما در دسترس نیست"
    assert fa.text("p.status").startswith("خطای 451")


def message_element(body: bytes) -> tuple[str, dict[str, str | None]]:
    match = re.search(rb'<p class="message"([^>]*)>(.*?)</p>', body, re.S)
    assert match is not None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1).decode()))
    return match.group(2).decode(), dict(attrs)


def test_geofence_default_sentence_is_translated() -> None:
    text, attrs = message_element(responder().denial(block("plain"), BROWSER, "zh-CN").body)
    assert text == "此服务在您所在的国家或地区不可用。"
    assert "lang" not in attrs  # in the page's language


def test_the_operators_table_gives_the_pages_language() -> None:
    text, attrs = message_element(responder().denial(block("vpn"), BROWSER, "fa").body)
    assert text == "استفاده از وی‌پی‌ان مجاز نیست."
    assert "lang" not in attrs
    assert attrs["dir"] == "auto"


def test_the_operators_text_is_never_replaced_by_a_translation() -> None:
    # zh-Hans is not in the rule's table: its English entry is shown, marked as English, in a
    # page whose fixed words are Chinese.
    response = responder().denial(block("vpn"), BROWSER, "zh-CN")
    text, attrs = message_element(response.body)
    assert text == "VPNs are not allowed."
    assert attrs["lang"] == "en"
    assert header(response, "Content-Language") == "zh-Hans"
    assert response.context["message_lang"] == "en"
    # One string is taken to be in the default language; never translated.
    text, attrs = message_element(responder().denial(block("text-only"), BROWSER, "fa").body)
    assert text == "Nope &lt;b&gt;&amp;&lt;/b&gt;"
    assert attrs["lang"] == "en"


@pytest.mark.parametrize(
    ("table", "default", "lang", "expected"),
    [
        ({"es": "ES", "fa": "FA", "en": "EN"}, "es", "ko", ("ES", "es")),  # default language
        ({"fa": "FA", "en": "EN"}, "es", "ko", ("EN", "en")),  # then English
        ({"fa": "FA", "ru": "RU"}, "es", "ko", ("FA", "fa")),  # then the first entry
        ({"fa": "FA", "ko": "KO"}, "es", "ko", ("KO", "ko")),  # the page's own
    ],
)
def test_message_fallbacks(
    table: dict[str, str], default: str, lang: str, expected: tuple[str, str]
) -> None:
    answers = Responder(
        geofence.load_policy(
            {
                "message": table,
                "page": {"languages": ["es", "ko", "en", "fa", "ru"], "default_language": default},
            }
        )
    )
    text, attrs = message_element(answers.denial(block("any"), BROWSER, lang).body)
    assert (text, attrs.get("lang", lang)) == expected


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_shipped_language_is_complete_and_escaped(lang: str) -> None:
    answers = responder(message={"en": '<i>Blocked</i> & "x"', lang: "<b>'y'</b>"})
    response = answers.denial(block("plain"), BROWSER, lang)
    body = response.body.decode()
    assert "<b>" not in body and "<i>" not in body
    page = Page(response.body)
    assert page.html["lang"] == lang
    assert page.text("h1") and page.text("h2") and page.text("p.status")
    assert page.links == [(POLICY_URL, page.links[0][1])] and page.links[0][1]
    assert page.text("code") == REF
    # The style sheet in the page is the one the CSP pins, in every language.
    style = re.search(r"<style>(.*?)</style>", body, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert header(response, "Content-Security-Policy") == PAGE_CSP
    assert f"'sha256-{digest}'" in PAGE_CSP
    assert "<script" not in body and " src=" not in body and "@import" not in body


def test_right_to_left_uses_logical_properties_only() -> None:
    # A physical left/right in the style sheet would not follow dir="rtl".
    assert not re.search(r"(margin|padding|border)-(left|right)|text-align:(left|right)", STYLE)
    assert "prefers-color-scheme:dark" in STYLE
    assert 'name="viewport"' in responder().denial(block("plain"), BROWSER, "fa").body.decode()


# -- suspended and 503 pages -----------------------------------------------------------------


def test_suspended_page_localized() -> None:
    response = responder().denial(SUSPENDED, BROWSER, "ru")
    page = Page(response.body)
    assert response.status == 403
    assert header(response, "Content-Language") == "ru"
    assert page.text("h1") == response.context["heading"] != "Account suspended"
    assert page.text("code") == REF
    assert response.context["code"] == "account_suspended"
    assert page.links and page.links[0][0] == POLICY_URL


def test_unavailable_page_localized() -> None:
    response = responder().denial(UNAVAILABLE, BROWSER, "ar")
    page = Page(response.body)
    assert response.status == 503
    assert header(response, "Retry-After") == "60"
    assert header(response, "Content-Language") == "ar"
    assert page.html == {"lang": "ar", "dir": "rtl"}
    assert page.text("h1") == "غير متاح مؤقتًا"
    assert page.text("code") == REF
    assert not page.links  # nothing to read about an outage
    assert "503" in page.text("p.status")


# -- the operator's template ---------------------------------------------------------------

TEMPLATE = (
    '<!doctype html><html lang="$lang" dir="$dir"><title>$heading</title>'
    "<style>body{color:red}</style><h1>$heading</h1><p>$message</p>"
    '<a href="$info_url">more</a><p>Ref: <b>$ref</b> ($status) $$5 ${ref}</p></html>\n'
)


def template_responder(tmp_path: Path, text: str = TEMPLATE, **config: Any) -> Responder:
    path = tmp_path / "blocked.html"
    path.write_text(text, encoding="utf-8")
    return responder(page={"template": str(path)}, **config)


def test_the_template_is_rendered_with_every_field(tmp_path: Path) -> None:
    answers = template_responder(tmp_path)
    response = answers.denial(block("vpn"), BROWSER, "fa")
    body = response.body.decode()
    assert body == (
        '<!doctype html><html lang="fa" dir="rtl"><title>در منطقهٔ شما در دسترس نیست</title>'
        "<style>body{color:red}</style><h1>در منطقهٔ شما در دسترس نیست</h1>"
        "<p>استفاده از وی‌پی‌ان مجاز نیست.</p>"
        f'<a href="{VPN_URL}">more</a><p>Ref: <b>{REF}</b> (451) $5 {REF}</p></html>\n'
    )
    assert header(response, "Content-Security-Policy") == TEMPLATE_CSP
    assert header(response, "Content-Length") == str(len(response.body))
    assert header(response, "Content-Language") == "fa"
    other = answers.denial(block("vpn", OTHER_REF), BROWSER, "fa")
    assert other.body == response.body.replace(REF.encode(), OTHER_REF.encode())


def test_the_template_escapes_every_value(tmp_path: Path) -> None:
    answers = template_responder(tmp_path, message="<script>alert(1)</script> \"'&")
    body = answers.denial(block("plain"), BROWSER, "en").body.decode()
    assert "<script>" not in body
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; &quot;&#x27;&amp;</p>" in body


def test_the_template_without_a_link_and_for_503(tmp_path: Path) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "info_url"}
    path = tmp_path / "blocked.html"
    path.write_text(TEMPLATE, encoding="utf-8")
    answers = Responder(geofence.load_policy({**config, "page": {"template": str(path)}}))
    assert '<a href="">' in answers.denial(block("plain"), BROWSER).body.decode()
    unavailable = answers.denial(UNAVAILABLE, BROWSER, "zh-HK").body.decode()
    assert "(503)" in unavailable and "暫時無法使用" in unavailable
    assert '<html lang="zh-Hant" dir="ltr">' in unavailable


def test_json_ignores_the_template(tmp_path: Path) -> None:
    response = template_responder(tmp_path).denial(block("vpn"), None)
    assert json.loads(response.body)["error"]["code"] == "vpn_not_allowed"
    assert header(response, "Content-Security-Policy") is None
