"""The HTML page shown to browsers instead of a blocked (or unavailable) resource."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import urlsplit

# One short inline style sheet: the page needs no other resource, so the CSP can forbid all.
STYLE = (
    ":root{color-scheme:light dark}"
    "body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    "main{max-width:36rem;margin:0 auto;padding:3rem 1.25rem}"
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}"
    "p{margin:0 0 1rem;overflow-wrap:anywhere}"
    ".status{font-size:.875rem;opacity:.8}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
_CSP_REST = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# For the built-in page: only this exact style sheet may apply.
PAGE_CSP = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; {_CSP_REST}"
# For pages an adapter renders from a user's own template, whose inline styles we cannot hash.
TEMPLATE_CSP = f"default-src 'none'; style-src 'unsafe-inline'; {_CSP_REST}"

_LINKABLE_SCHEMES = frozenset({"", "http", "https"})


def render_page(
    *,
    status: int,
    reason_phrase: str,
    title: str,
    message: str,
    info_url: str | None,
    href: str | None = None,
) -> str:
    """The whole document. Shows only what it is given, every piece escaped.

    ``info_url`` is shown as text; it becomes a link to ``href`` (its percent-encoded form,
    default ``info_url``) only for http(s) or relative URLs, so a ``javascript:`` URL in a
    careless config is never clickable.
    """
    link = ""
    if info_url:
        text = escape(info_url, quote=True)
        target = href or info_url
        if _linkable(target):
            text = f'<a href="{escape(target, quote=True)}">{text}</a>'
        link = f"<p>More information: {text}</p>\n"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title, quote=True)}</title>\n"
        f"<style>{STYLE}</style>\n"
        "</head>\n"
        "<body>\n"
        "<main>\n"
        f"<h1>{escape(title, quote=True)}</h1>\n"
        # dir=auto: the message is the operator's text and may be in a right-to-left script.
        f'<p dir="auto">{escape(message, quote=True)}</p>\n'
        f"{link}"
        f'<p class="status">Error {status}: {escape(reason_phrase, quote=True)}</p>\n'
        "</main>\n"
        "</body>\n"
        "</html>\n"
    )


def _linkable(url: str) -> bool:
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False
    return scheme.lower() in _LINKABLE_SCHEMES
