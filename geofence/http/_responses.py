"""Framework-neutral HTTP answers: the block page, the 503, the warn headers.

A denial depends on what answers (a rule with its own code, message and link, or the policy),
its kind and status, the page's language, and whether the client gets the page or JSON. Each
such response is built once, on first use, and kept (their number is bounded by the policy:
rules x kinds x statuses x languages x 2); per request the responder picks one and splices the
request's reference into prebuilt bytes. References have a fixed length (geofence._refs), so
the prebuilt Content-Length holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from geofence._cache import BoundedCache, bounded_put
from geofence._model import Decision
from geofence._record import record
from geofence._refs import LENGTH as REF_LENGTH
from geofence.hotpath import TUPLES
from geofence.http._accept import prefers_html
from geofence.http._httpdate import imf_fixdate, sf_date
from geofence.http._locale import SHIPPED, negotiate
from geofence.http._page import PAGE_CSP, TEMPLATE_CSP, escape_html, render_page, render_template
from geofence.http._wording import (
    BLOCK_MESSAGE,
    SUSPENDED_MESSAGE,
    UNAVAILABLE_MESSAGE,
    Kind,
    Text,
    wording,
)

if TYPE_CHECKING:
    from geofence.config._policy import Message, Policy

__all__ = [
    "BLOCK_MESSAGE",
    "PAGE_CSP",
    "SUSPENDED_MESSAGE",
    "TEMPLATE_CSP",
    "UNAVAILABLE_MESSAGE",
    "Responder",
    "Response",
    "merge_cache_control",
    "prefers_html",
]

BLOCK_CODE = "unsupported_country_region_territory"
BLOCK_TYPE = "request_forbidden"
SUSPENDED_CODE = "account_suspended"
UNAVAILABLE_CODE = "geofence_unavailable"
UNAVAILABLE_TYPE = "service_unavailable"
RETRY_AFTER = "60"
# Headers that let a cache store a response despite (or beside) Cache-Control: HTTP/1.0's
# Expires and the CDN-targeted RFC 9213 / Surrogate-Control fields. A denial never carries them,
# whatever an app hook added; adapters that let app code touch the denial remove them.
CACHE_OVERRIDE_HEADERS = ("expires", "cdn-cache-control", "surrogate-control")

# Where the reference goes in a prebuilt body. No page or JSON text can hold it otherwise:
# configured texts may not contain control characters (the loader refuses them), and in JSON
# an unescaped quote before it only comes from the encoder.
_REF_SLOT = "\x00geofence-ref\x00"
# json.dumps(_REF_SLOT), written out: json is imported when the first JSON denial is built.
_JSON_REF_SLOT = b'"\\u0000geofence-ref\\u0000"'
_HTML_REF_SLOT = _REF_SLOT.encode()
# What geofence._refs makes; anything else (a Decision built by hand) takes the slow path.
_REF = re.compile(r"[0-9A-Z]{5}-[0-9A-Z]{5}")
assert REF_LENGTH == 11, "the prebuilt Content-Length assumes references of 11 characters"
# Responses kept with their reference: a page is ~2.5 kB, so at most ~2.5 MB.
RESPONSE_CACHE_SIZE = 1024
# Header values longer than this are not kept as keys (browsers send < 300 bytes of each).
_SEEN_KEY_MAX = 1024
_JSON = ""  # the language key of a JSON response: it has none (JSON stays English)


@record(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]  # includes Content-Type and Content-Length
    body: bytes
    html: bool  # True when body is the HTML page (Django may re-render it from a template)
    # What the page shows (status, code, message, info_url, ref, lang, dir, heading, ...), for
    # an adapter that renders its own template. Read-only.
    context: Mapping[str, object]
    # The HTML page this response stands for, also for HEAD (whose body is empty but whose
    # Content-Length is the page's); an adapter rendering its own template starts from it.
    page: bytes = b""


#: Response(status, headers, body, html, context, page) for the denial of each new blocked client:
#: with geofence.hotpath._tuples built, made without the dataclass's __init__ (which sets each field
#: through object.__setattr__: about 7,000 instructions), else the class itself.
new_response: Callable[..., Response] = (
    Response if TUPLES is None else TUPLES.Builder(Response, Response.__match_args__)
)


@record(frozen=True, slots=True)
class _Answer:
    """What a block answers with: a rule's own code, message and link, or the policy's."""

    code: str
    message: Text
    info_url: str | None
    uri: str | None  # info_url as it goes into a header and an href


class _Prebuilt:
    """One denial with a hole for the reference: its body split where the reference goes."""

    __slots__ = ("context", "headers", "html", "parts", "status", "token")

    def __init__(
        self,
        status: int,
        headers: tuple[tuple[str, str], ...],
        parts: tuple[bytes, ...],
        html: bool,
        context: dict[str, object],
        token: Callable[[str | None], bytes],
    ) -> None:
        self.status = status
        self.headers = headers
        self.parts = parts
        self.html = html
        self.context = context
        self.token = token  # a reference not made by geofence._refs, escaped for the body

    def response(self, ref: str | None) -> Response:
        html = self.html
        if ref is not None and len(ref) == REF_LENGTH and _REF.fullmatch(ref):
            body = (ref.encode() if html else b'"' + ref.encode() + b'"').join(self.parts)
            headers = self.headers
        else:
            # No reference, or one not made by geofence._refs: escaped, and the length redone.
            body = self.token(ref).join(self.parts)
            length = str(len(body))
            headers = tuple(
                (name, length if name == "Content-Length" else value)
                for name, value in self.headers
            )
        context = MappingProxyType({**self.context, "ref": ref})
        return new_response(self.status, headers, body, html, context, body if html else b"")


def _text_of(message: Message) -> Text:
    table = MappingProxyType({tag: _valid_text(t) for tag, t in message.by_language.items()})
    return Text(_valid_text(message.text), table, message.own)


class Responder:
    """Builds each denial once, on first use; per request it picks one and adds the reference.

    ``Responder(policy)``; ``Responder(message, info_url)`` answers every block with one
    message (taken as the operator's own, in English) and the shipped languages.
    """

    __slots__ = (
        "_answers",
        "_built",
        "_default",
        "_default_language",
        "_deprecations",
        "_languages",
        "_responses",
        "_seen",
        "_sunset_links",
        "_sunsets",
        "_template",
        "_vary",
    )

    def __init__(self, policy: Policy | str, info_url: str | None = None) -> None:
        if isinstance(policy, str):
            text = Text(_valid_text(policy), MappingProxyType({}), own=True)
            languages, default_language, template = SHIPPED, "en", None
            rules: tuple[tuple[str, str | None, Text | None, str | None], ...] = ()
        else:
            text = _text_of(policy.messages)
            info_url = policy.info_url
            page = policy.page
            languages, default_language = page.languages, page.default_language
            template = page.template
            rules = tuple(
                (
                    rule.name,
                    rule.code,
                    None if rule.message is None else _text_of(rule.message),
                    rule.info_url,
                )
                for rule in policy.rules
                if rule.code is not None or rule.message is not None or rule.info_url is not None
            )
        self._default = _answer(BLOCK_CODE, text, info_url)
        # Rules with an answer of their own (the others answer with the policy's).
        self._answers: dict[str | None, _Answer] = {
            name: _answer(
                code or BLOCK_CODE,
                message or text,
                rule_url if rule_url is not None else info_url,
            )
            for name, code, message, rule_url in rules
        }
        self._languages = languages
        self._default_language = default_language
        self._template = template
        # RFC 9110 12.5.5: the fields the choice of representation depends on. With one
        # language offered, Accept-Language changes nothing. JSON responses say the same:
        # the resource has an HTML variant in each language, whichever one this request got.
        self._vary = "Accept, Accept-Language" if len(languages) > 1 else "Accept"
        # (rule with its own answer or None, kind, status, language or _JSON) -> denial.
        # Bounded by the policy, never by requests: the rule comes from the decision, the
        # language from negotiate(), which returns an offered language.
        self._built: dict[tuple[str | None, Kind, int, str], _Prebuilt] = {}
        # ... and with a reference: the responses recently given (each holds its body).
        self._responses: dict[tuple[str | None, Kind, int, str, str | None], Response] = {}
        # ... and by what the request said (reference, reason, rule, status, Accept,
        # Accept-Language). Plain dicts (see geofence._cache.bounded_put): read per denial.
        self._seen: dict[
            tuple[str | None, str, str | None, int | None, str | None, str | None], Response
        ] = {}
        self._sunset_links: dict[str | None, str | None] = {
            name: _sunset_link(answer.uri) for name, answer in self._answers.items()
        }
        self._sunset_links[None] = _sunset_link(self._default.uri)
        # Rule dates seen so far -> header text; as many as there are rules with dates.
        self._sunsets: BoundedCache[datetime, str] = BoundedCache(256)
        self._deprecations: BoundedCache[datetime, str] = BoundedCache(256)

    def denial(
        self, decision: Decision, accept: str | None, accept_language: str | None = None
    ) -> Response:
        """The response for an enforced block decision: a block (451/403), an account
        suspension (403/451), or a 503 when a database or the account store failed."""
        # A client that retries sends the same headers and keeps its reference (the same
        # client, rule and account get the same one, see geofence._refs): one lookup gives
        # the very response it got before, without negotiating again.
        seen = (
            decision.ref,
            decision.reason,
            decision.rule,
            decision.status,
            accept,
            accept_language,
        )
        response = self._seen.get(seen)
        if response is None:
            response = self._pick(decision, accept, accept_language)
            if len(accept or "") + len(accept_language or "") <= _SEEN_KEY_MAX:
                bounded_put(self._seen, RESPONSE_CACHE_SIZE, seen, response)
        return response

    def _pick(
        self, decision: Decision, accept: str | None, accept_language: str | None
    ) -> Response:
        reason = decision.reason
        rule: str | None = None
        kind: Kind
        if reason in ("db_error", "store_error"):
            kind, status = "unavailable", 503
        elif reason == "account_suspended":
            kind, status = "suspended", 451 if decision.status == 451 else 403
        else:
            # Anything unexpected still blocks, with the default status.
            kind, status = "block", 403 if decision.status == 403 else 451
            if decision.rule in self._answers:
                rule = decision.rule
        if prefers_html(accept):
            lang = negotiate(accept_language, self._languages, self._default_language)
        else:
            lang = _JSON
        ref = decision.ref
        # Requests that differ only in how their headers are spelled share one response.
        full = (rule, kind, status, lang, ref)
        response = self._responses.get(full)
        if response is None:
            key = (rule, kind, status, lang)
            built = self._built.get(key)
            if built is None:
                built = self._built[key] = self._build(key)
            response = built.response(ref)
            if ref is None or len(ref) == REF_LENGTH:
                bounded_put(self._responses, RESPONSE_CACHE_SIZE, full, response)
        return response

    def _build(self, key: tuple[str | None, Kind, int, str]) -> _Prebuilt:
        rule, kind, status, lang = key
        answer = self._answers[rule] if rule is not None else self._default
        info_url, uri = answer.info_url, answer.uri
        if kind == "unavailable":
            code, error_type, text, info_url, uri = (
                UNAVAILABLE_CODE,
                UNAVAILABLE_TYPE,
                UNAVAILABLE_MESSAGE,
                None,
                None,
            )
        elif kind == "suspended":
            code, error_type, text = SUSPENDED_CODE, BLOCK_TYPE, SUSPENDED_MESSAGE
        else:
            code, error_type, text = answer.code, BLOCK_TYPE, answer.message.text
        html = lang != _JSON
        words = wording(
            kind, status, lang or self._default_language, answer.message, self._default_language
        )
        context: dict[str, object] = {
            "status": status,
            "code": code,
            "message": words.message if html else text,
            "info_url": info_url,
            "title": words.heading,
            "heading": words.heading,
            "lang": words.lang,
            "dir": words.dir,
            "message_lang": words.message_lang,
            "what_you_can_do": words.what_you_can_do,
            "more_information": words.more_information,
            "advice": words.advice,
            "reference_label": words.reference,
            "status_line": words.status_line,
        }
        if html:
            if self._template is not None:
                page = render_template(
                    self._template, words, ref=_REF_SLOT, status=status, info_url=uri
                )
                csp = TEMPLATE_CSP
            else:
                page = render_page(words, ref=_REF_SLOT, info_url=info_url, href=uri)
                csp = PAGE_CSP
            parts = tuple(page.encode().split(_HTML_REF_SLOT))
            token_length = REF_LENGTH
            content_type = "text/html; charset=utf-8"
            token = _html_token
        else:
            # Here, once per JSON denial built (bounded by the policy), not at import: an app
            # that never denies a JSON client never loads json.
            import json

            dumps = json.dumps

            def token(ref: str | None) -> bytes:
                return dumps(ref, ensure_ascii=True).encode()

            error = {
                "code": code,
                "message": text,
                "type": error_type,
                "param": None,
                "ref": _REF_SLOT,
            }
            body = (json.dumps({"error": error}, ensure_ascii=False) + "\n").encode()
            parts = tuple(body.split(_JSON_REF_SLOT))
            token_length = REF_LENGTH + 2  # with its quotes
            content_type = "application/json"
        length = sum(map(len, parts)) + (len(parts) - 1) * token_length
        headers = [("Content-Type", content_type), ("Content-Length", str(length))]
        if status == 503:
            headers += [("Retry-After", RETRY_AFTER), ("Cache-Control", "no-store")]
        else:
            headers.append(("Cache-Control", "private, no-store"))
            if uri:
                headers.append(("Link", f'<{uri}>; rel="blocked-by"'))
        if html:
            headers.append(("Content-Language", words.lang))
        headers += [("Vary", self._vary), ("X-Content-Type-Options", "nosniff")]
        if html:
            headers.append(("Content-Security-Policy", csp))
        return _Prebuilt(status, tuple(headers), parts, html, context, token)

    def warn_headers(
        self, decision: Decision, get: Callable[[str], str | None]
    ) -> list[tuple[str, str]]:
        """Headers to set (replacing any of the same name) on the app's response for a warn.

        ``get(name)`` returns the app's current value of a header (or None) so that
        Cache-Control and Link are merged, not clobbered. An adapter whose framework allows
        repeated header lines passes them joined with ", ". The Link is the warning rule's
        ``info_url`` when it has one, else the policy's.
        """
        headers: list[tuple[str, str]] = []
        if decision.enforce_from is not None:
            headers.append(("Sunset", self._date(decision.enforce_from, sunset=True)))
        if decision.warn_from is not None:
            headers.append(("Deprecation", self._date(decision.warn_from, sunset=False)))
        links = self._sunset_links
        link = links.get(decision.rule, links[None])
        if link is not None:
            existing = (get("Link") or "").strip()
            if not existing:
                headers.append(("Link", link))
            elif link not in existing:
                headers.append(("Link", f"{existing}, {link}"))
        headers.append(("Cache-Control", merge_cache_control(get("Cache-Control"))))
        # A CDN obeys these instead of Cache-Control (RFC 9213): a response that depends on
        # where the client is must not be stored there either.
        for name in ("CDN-Cache-Control", "Surrogate-Control"):
            if get(name) is not None:
                headers.append((name, "no-store"))
        return headers

    def _date(self, moment: datetime, *, sunset: bool) -> str:
        cache = self._sunsets if sunset else self._deprecations
        text = cache.get(moment)
        if text is None:
            text = cache.put(moment, imf_fixdate(moment) if sunset else sf_date(moment))
        return text


def _html_token(ref: str | None) -> bytes:
    return escape_html(ref or "").encode()


def _answer(code: str, message: Text, info_url: str | None) -> _Answer:
    info_url = _valid_text(info_url) if info_url else None
    return _Answer(code, message, info_url, header_uri(info_url) if info_url else None)


def _sunset_link(uri: str | None) -> str | None:
    return f'<{uri}>; rel="sunset"' if uri else None


def _valid_text(text: str) -> str:
    # A lone surrogate (possible in a Python dict config) cannot be encoded; never fail on it.
    return text.encode("utf-8", "replace").decode("utf-8")


# RFC 3986 reserved and unreserved characters plus "%": what may stand unencoded in a URI.
_URI_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def header_uri(url: str) -> str:
    """``url`` as a URI-reference safe inside ``<...>`` in a header and in an href.

    Spaces, quotes, angle brackets, control characters and non-ASCII are percent-encoded
    (UTF-8), so a header value can never be split or end up outside Latin-1.
    """
    from urllib.parse import quote  # at load and export time, never per request

    return quote(url, safe=_URI_SAFE)


# Shared-cache permissions are dropped; a field-qualified private="..." (which still lets a
# shared cache store the rest) gives way to the plain "private" put first.
_REPLACED = frozenset({"public", "s-maxage", "private"})
# One directive: anything but commas, where a quoted string may hold commas.
_DIRECTIVE = re.compile(r'(?:[^,"]+|"(?:[^"\\]|\\.?)*"?)+', re.DOTALL)
_cache_control: BoundedCache[str, str] = BoundedCache(256)


def merge_cache_control(value: str | None) -> str:
    """The app's Cache-Control made private: ``public``, ``s-maxage`` and a field-qualified
    ``private="..."`` are dropped, ``private`` leads, every other directive is kept as sent.

    ``"public, max-age=60, s-maxage=300"`` -> ``"private, max-age=60"``; None -> ``"private"``.
    """
    key = value or ""
    merged = _cache_control.get(key)
    if merged is not None:
        return merged
    kept = ["private"]
    for match in _DIRECTIVE.finditer(key):
        directive = match.group().strip()
        name = directive.partition("=")[0].strip().lower()
        if directive and name not in _REPLACED:
            kept.append(directive)
    merged = ", ".join(kept)
    if len(key) <= 1024:
        _cache_control.put(key, merged)
    return merged
