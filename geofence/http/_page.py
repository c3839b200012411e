"""The HTML page shown to browsers instead of a blocked (or unavailable) resource: the built-in
page, or the operator's ``[page] template``.

Both show only what they are given, every piece HTML-escaped, and load nothing: one inline
style sheet, pinned by its hash in the Content-Security-Policy, no script, no image, no font.
"""

from __future__ import annotations

import string

from geofence.http._wording import Wording

# One inline style sheet for every language and kind, so one CSP hash covers them all.
# Logical properties (margin-inline, border-inline-start, text-align:start) follow the page's
# direction, so the right-to-left page needs no style of its own. Colours come from variables
# that prefers-color-scheme swaps; the page is one column that fits a 320 px phone.
STYLE = (
    ":root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--text:#1c2024;--muted:#5b636b;"
    "--line:#dde1e6;--accent:#0b57d0;--well:#eef1f5}"
    "@media (prefers-color-scheme:dark){:root{--bg:#0e1014;--card:#181b21;--text:#e7e9ec;"
    "--muted:#a0a8b1;--line:#2d323b;--accent:#8ab4f8;--well:#22262e}}"
    "*{box-sizing:border-box}"
    "html{-webkit-text-size-adjust:100%;text-size-adjust:100%}"
    "body{margin:0;min-height:100vh;background:var(--bg);color:var(--text);"
    "font:1.0625rem/1.6 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif}"
    "main{max-width:38rem;margin-inline:auto;padding:clamp(1rem,8vh,5rem) 1rem 2rem}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:14px;"
    "padding:clamp(1.25rem,5vw,2.25rem);text-align:start}"
    "h1{margin:0 0 .75rem;font-size:clamp(1.5rem,5vw,1.875rem);line-height:1.25}"
    "h2{margin:1.75rem 0 .5rem;font-size:1.0625rem}"
    "p{margin:0 0 1rem;overflow-wrap:anywhere}"
    "a{color:var(--accent);font-weight:600;text-underline-offset:.2em}"
    ".ref{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem;margin:0;"
    "padding:.75rem 1rem;border-radius:10px;background:var(--well);"
    "border-inline-start:4px solid var(--accent)}"
    ".ref span{font-size:.875rem;color:var(--muted)}"
    "code{font:600 1.375rem/1.3 ui-monospace,'SFMono-Regular',Menlo,Consolas,"
    "'DejaVu Sans Mono',monospace;letter-spacing:.06em;user-select:all;-webkit-user-select:all}"
    ".status{margin:1.5rem 0 0;padding-block-start:1rem;border-block-start:1px solid var(--line);"
    "font-size:.875rem;color:var(--muted)}"
)
# base64 of the SHA-256 of STYLE, written out: hashing it at import would load hashlib, and
# with it OpenSSL (~3.5 MB resident), into every process. tests/test_import_cost.py checks it.
STYLE_HASH = "KnxBU/E5AHH5oZWcHqoTUmNBdzbVuWdZScnq87iMTNI="
_CSP_REST = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# For the built-in page: only this exact style sheet may apply.
PAGE_CSP = f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; {_CSP_REST}"
# For pages from an operator's own template, whose inline styles we cannot hash.
TEMPLATE_CSP = f"default-src 'none'; style-src 'unsafe-inline'; {_CSP_REST}"

_LINKABLE_SCHEMES = frozenset({"", "http", "https"})


def render_page(words: Wording, *, ref: str, info_url: str | None, href: str | None) -> str:
    """The built-in page. ``ref`` is inserted as given (the caller passes a reference, which is
    plain ASCII, or a placeholder it replaces later); everything else is escaped here.

    ``info_url`` becomes the "More information" link to ``href`` (its percent-encoded form)
    only for http(s) or relative URLs, so a ``javascript:`` URL is never clickable; any other
    URL is shown as text.
    """
    heading = _text(words.heading)
    message_lang = f' lang="{_text(words.message_lang)}"' if words.message_lang else ""
    link = ""
    if info_url:
        target = href or info_url
        if _linkable(target):
            link = (
                f'<p><a href="{_text(target)}" rel="noreferrer">'
                f"{_text(words.more_information)}</a></p>\n"
            )
        else:
            link = f"<p>{_text(words.more_information)}: {_text(info_url)}</p>\n"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_text(words.lang)}" dir="{words.dir}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{heading}</title>\n"
        f"<style>{STYLE}</style>\n"
        "</head>\n"
        "<body>\n"
        "<main>\n"
        '<div class="card">\n'
        f"<h1>{heading}</h1>\n"
        # dir=auto: the operator's text may be written in another direction than the page.
        f'<p class="message"{message_lang} dir="auto">{_text(words.message)}</p>\n'
        f"<h2>{_text(words.what_you_can_do)}</h2>\n"
        f"{link}"
        f"<p>{_text(words.advice)}</p>\n"
        # The reference is Latin letters and digits whatever the page's direction.
        f'<p class="ref">\n<span>{_text(words.reference)}</span>\n'
        f'<code dir="ltr" translate="no">{ref}</code>\n</p>\n'
        f'<p class="status">{_text(words.status_line)}</p>\n'
        "</div>\n"
        "</main>\n"
        "</body>\n"
        "</html>\n"
    )


def render_template(
    template: str,
    words: Wording,
    *,
    ref: str,
    status: int,
    info_url: str | None,
) -> str:
    """The operator's ``[page] template`` with every field filled in, each HTML-escaped
    (``ref`` as given, see :func:`render_page`).

    ``substitute``, not ``safe_substitute``: the loader rejected any other placeholder, so a
    KeyError here would be a bug to see, not text to leave in the page. ``$info_url`` is the
    percent-encoded URL, or empty when there is none.
    """
    fields = {
        "heading": _text(words.heading),
        "message": _text(words.message),
        "info_url": _text(info_url) if info_url and _linkable(info_url) else "",
        "ref": ref,
        "lang": _text(words.lang),
        "dir": words.dir,
        "status": str(status),
    }
    return string.Template(template).substitute(fields)


def escape_html(value: str) -> str:
    """``html.escape(value, quote=True)``, without importing :mod:`html`, whose entity table
    (~0.5 MB resident) would load with it. "&" first, so no entity is escaped twice."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


_text = escape_html


def _linkable(url: str) -> bool:
    # Pages are rendered once per kind and language (see _responses), never per request.
    from urllib.parse import urlsplit

    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False
    return scheme.lower() in _LINKABLE_SCHEMES
