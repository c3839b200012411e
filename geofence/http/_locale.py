"""The page's languages: which are shipped, and how a tag is spelled.

(Negotiation and catalogues are being built, issue 12.)
"""

from __future__ import annotations

#: Languages whose catalogues ship with geofence, in the order pages offer them by default.
SHIPPED: tuple[str, ...] = ("en", "zh-Hans", "zh-Hant", "ru", "uk", "fa", "ar", "es", "ko")
_BY_FOLDED = {tag.lower(): tag for tag in SHIPPED}


def canonical(tag: str) -> str | None:
    """``tag`` spelled as in :data:`SHIPPED` ("ZH-hans" -> "zh-Hans"), or None when geofence
    ships no catalogue for it."""
    return _BY_FOLDED.get(tag.strip().lower().replace("_", "-"))
