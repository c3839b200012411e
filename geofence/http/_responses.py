"""Framework-neutral HTTP answers: the block page, the 503, the warn headers.

Every denial response is built once, when the engine is built; per request the responder only
picks one, so a flood of blocked requests costs no rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import quote

from geofence._cache import BoundedCache
from geofence._model import Decision
from geofence.http._accept import prefers_html
from geofence.http._httpdate import imf_fixdate, sf_date
from geofence.http._page import PAGE_CSP, TEMPLATE_CSP, render_page

if TYPE_CHECKING:
    from geofence.config._policy import Policy

__all__ = [
    "PAGE_CSP",
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
# Deliberately says nothing of how many requests or from where: that is for the support desk.
SUSPENDED_MESSAGE = (
    "Access for this account is suspended because of repeated requests from a country, "
    "region, or territory where this service is not available."
)
UNAVAILABLE_CODE = "geofence_unavailable"
UNAVAILABLE_TYPE = "service_unavailable"
# Deliberately generic: the cause (a database problem) is for the operator's log, not the client.
UNAVAILABLE_MESSAGE = "This service is temporarily unavailable. Please try again later."
RETRY_AFTER = "60"
# Headers that let a cache store a response despite (or beside) Cache-Control: HTTP/1.0's
# Expires and the CDN-targeted RFC 9213 / Surrogate-Control fields. A denial never carries them,
# whatever an app hook added; adapters that let app code touch the denial remove them.
CACHE_OVERRIDE_HEADERS = ("expires", "cdn-cache-control", "surrogate-control")

_REASON_PHRASES = {
    451: "Unavailable For Legal Reasons",
    403: "Forbidden",
    503: "Service Unavailable",
}
_TITLES = {
    451: "Not available in your region",
    403: "Not available in your region",
    503: "Temporarily unavailable",
}
_SUSPENDED_TITLE = "Account suspended"
# Responses are prebuilt per kind of denial and status (the statuses a config allows).
_KINDS = {"block": (451, 403), "suspended": (403, 451), "unavailable": (503,)}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]  # includes Content-Type and Content-Length
    body: bytes
    html: bool  # True when body is the HTML page (Django may re-render it from a template)
    # What the page shows: status, code, message, info_url, title. Read-only.
    context: Mapping[str, object]
    # The HTML page this response stands for, also for HEAD (whose body is empty but whose
    # Content-Length is the page's); an adapter rendering its own template starts from it.
    page: bytes = b""


class Responder:
    """Builds every response once, at engine build time; per request it only picks one."""

    __slots__ = ("_deprecations", "_responses", "_sunset_link", "_sunsets")

    def __init__(self, policy: Policy | str, info_url: str | None = None) -> None:
        if isinstance(policy, str):
            message = policy
        else:
            message, info_url = policy.message, policy.info_url
        message = _valid_text(message)
        info_url = _valid_text(info_url) if info_url else None
        uri = header_uri(info_url) if info_url else None
        # Indexed [(kind, status)][html]; html is a bool, so False -> 0 (JSON), True -> 1.
        self._responses: dict[tuple[str, int], tuple[Response, Response]] = {
            (kind, status): (
                _build(kind, status, message, info_url, uri, html=False),
                _build(kind, status, message, info_url, uri, html=True),
            )
            for kind, statuses in _KINDS.items()
            for status in statuses
        }
        self._sunset_link = f'<{uri}>; rel="sunset"' if uri else None
        # Rule dates seen so far -> header text; as many as there are rules with dates.
        self._sunsets: BoundedCache[datetime, str] = BoundedCache(256)
        self._deprecations: BoundedCache[datetime, str] = BoundedCache(256)

    def denial(
        self, decision: Decision, accept: str | None, accept_language: str | None = None
    ) -> Response:
        """The response for an enforced block decision: a block (451/403), an account
        suspension (403/451), or a 503 when a database or the account store failed."""
        reason = decision.reason
        if reason in ("db_error", "store_error"):
            key = ("unavailable", 503)
        elif reason == "account_suspended":
            key = ("suspended", 451 if decision.status == 451 else 403)
        else:
            # Anything unexpected still blocks, with the default status.
            key = ("block", 403 if decision.status == 403 else 451)
        return self._responses[key][prefers_html(accept)]

    def warn_headers(
        self, decision: Decision, get: Callable[[str], str | None]
    ) -> list[tuple[str, str]]:
        """Headers to set (replacing any of the same name) on the app's response for a warn.

        ``get(name)`` returns the app's current value of a header (or None) so that
        Cache-Control and Link are merged, not clobbered. An adapter whose framework allows
        repeated header lines passes them joined with ", ".
        """
        headers: list[tuple[str, str]] = []
        if decision.enforce_from is not None:
            headers.append(("Sunset", self._date(decision.enforce_from, sunset=True)))
        if decision.warn_from is not None:
            headers.append(("Deprecation", self._date(decision.warn_from, sunset=False)))
        if self._sunset_link is not None:
            existing = (get("Link") or "").strip()
            if not existing:
                headers.append(("Link", self._sunset_link))
            elif self._sunset_link not in existing:
                headers.append(("Link", f"{existing}, {self._sunset_link}"))
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


def _build(
    denial: str, status: int, message: str, info_url: str | None, uri: str | None, *, html: bool
) -> Response:
    title = _TITLES[status]
    if denial == "unavailable":
        code, kind, text, shown_url = UNAVAILABLE_CODE, UNAVAILABLE_TYPE, UNAVAILABLE_MESSAGE, None
    elif denial == "suspended":
        code, kind, text, shown_url = SUSPENDED_CODE, BLOCK_TYPE, SUSPENDED_MESSAGE, info_url
        title = _SUSPENDED_TITLE
    else:
        code, kind, text, shown_url = BLOCK_CODE, BLOCK_TYPE, message, info_url
    context = MappingProxyType(
        {"status": status, "code": code, "message": text, "info_url": shown_url, "title": title}
    )
    if html:
        page = render_page(
            status=status,
            reason_phrase=_REASON_PHRASES[status],
            title=title,
            message=text,
            info_url=shown_url,
            href=uri if shown_url else None,
        )
        body = page.encode()
        content_type = "text/html; charset=utf-8"
    else:
        error = {"code": code, "message": text, "type": kind, "param": None}
        body = (json.dumps({"error": error}, ensure_ascii=False) + "\n").encode()
        content_type = "application/json"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if status == 503:
        headers += [("Retry-After", RETRY_AFTER), ("Cache-Control", "no-store")]
    else:
        headers.append(("Cache-Control", "private, no-store"))
        if uri:
            headers.append(("Link", f'<{uri}>; rel="blocked-by"'))
    headers += [("Vary", "Accept"), ("X-Content-Type-Options", "nosniff")]
    if html:
        headers.append(("Content-Security-Policy", PAGE_CSP))
    return Response(status, tuple(headers), body, html, context, body if html else b"")


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
