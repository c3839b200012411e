"""Accept-header negotiation between the HTML page and the JSON body (RFC 9110 section 12.5.1)."""

from __future__ import annotations

import re

from geofence._cache import BoundedCache

# The header is client input: bound the work whatever it holds. Real browsers send < 300
# bytes and < 10 ranges.
MAX_LENGTH = 4096
MAX_RANGES = 32
# Browsers send a handful of distinct values, so a small cache absorbs nearly every request.
_CACHE_SIZE = 256
_CACHE_KEY_MAX = 1024
_cache: BoundedCache[str, bool] = BoundedCache(_CACHE_SIZE)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")

# Specificity of a media range for a given media type: exact > type/* > */*.
_NONE, _ANY, _TYPE, _EXACT = 0, 1, 2, 3


def prefers_html(accept: str | None) -> bool:
    """True when ``accept`` rates ``text/html`` above ``application/json`` (and above zero).

    A missing, empty or unparseable header means ``*/*``: a tie, which goes to JSON, so API
    clients and curl get JSON and only real browsers get the page.
    """
    if not accept:
        return False
    cached = _cache.get(accept)
    if cached is not None:
        return cached
    result = _negotiate(accept)
    if len(accept) <= _CACHE_KEY_MAX:
        _cache.put(accept, result)
    return result


def _negotiate(accept: str) -> bool:
    pieces = accept[:MAX_LENGTH].split(",", MAX_RANGES)
    if len(pieces) > MAX_RANGES or len(accept) > MAX_LENGTH:
        # The last piece is the unparsed rest, or a range cut in the middle.
        pieces.pop()
    html_rank = json_rank = _NONE
    html_q = json_q = 0.0
    for piece in pieces:
        parsed = _media_range(piece)
        if parsed is None:
            continue
        kind, subtype, q = parsed
        rank = _specificity(kind, subtype, "text", "html")
        # Strictly greater: among equally specific ranges the first one counts.
        if rank > html_rank:
            html_rank, html_q = rank, q
        rank = _specificity(kind, subtype, "application", "json")
        if rank > json_rank:
            json_rank, json_q = rank, q
    return html_q > 0 and html_q > json_q


def _media_range(piece: str) -> tuple[str, str, float] | None:
    media, _, params = piece.partition(";")
    kind, slash, subtype = media.strip().lower().partition("/")
    if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(subtype):
        return None
    if kind == "*" and subtype != "*":
        return None
    q = 1.0
    if params:
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                if not _QVALUE.fullmatch(value):
                    return None
                q = float(value)
                # What follows a weight are extension parameters (RFC 7231), not media ones.
                break
    return kind, subtype, q


def _specificity(kind: str, subtype: str, want_kind: str, want_subtype: str) -> int:
    if kind == "*":
        return _ANY
    if kind != want_kind:
        return _NONE
    if subtype == "*":
        return _TYPE
    return _EXACT if subtype == want_subtype else _NONE
