"""The page's languages: which are shipped, how a tag is spelled, which one a request gets
(``Accept-Language``), which way it is written, and its translated words.

Negotiation is RFC 4647 "lookup" with one addition that no general-purpose library makes: a
Chinese range is first resolved to its script, because geofence ships Simplified and
Traditional Chinese, not "Chinese". Plain lookup would truncate ``zh-HK`` to ``zh`` and show a
Hong Kong reader Simplified characters (or, with the usual offered lists, English).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from geofence._cache import BoundedCache
from geofence._logs import logger

if TYPE_CHECKING:
    from pathlib import Path

#: Languages whose catalogues ship with geofence, in the order pages offer them by default.
SHIPPED: tuple[str, ...] = ("en", "zh-Hans", "zh-Hant", "ru", "uk", "fa", "ar", "es", "ko")
_BY_FOLDED = {tag.lower(): tag for tag in SHIPPED}


def canonical(tag: str) -> str | None:
    """``tag`` spelled as in :data:`SHIPPED` ("ZH-hans" -> "zh-Hans"), or None when geofence
    ships no catalogue for it."""
    return _BY_FOLDED.get(tag.strip().lower().replace("_", "-"))


#: Languages written right to left (the page gets ``dir="rtl"``).
RTL = frozenset({"ar", "fa"})


def direction(lang: str) -> Literal["ltr", "rtl"]:
    """``"rtl"`` for a language written right to left (by its primary subtag), else ``"ltr"``."""
    primary = lang.strip().lower().replace("_", "-").partition("-")[0]
    return "rtl" if primary in RTL else "ltr"


# -- Negotiation -------------------------------------------------------------------------------

# The header is client input: bound the work whatever it holds. Real browsers send < 200 bytes
# and < 10 ranges; Chrome's longest list of languages stays far under these.
MAX_LENGTH = 4096
MAX_RANGES = 32
# Browsers send a handful of distinct values, so a small cache absorbs nearly every request;
# a flood of distinct values costs a refill (see geofence._cache), never memory.
_CACHE_SIZE = 512
_CACHE_KEY_MAX = 512
_cache: BoundedCache[str, tuple[str, ...]] = BoundedCache(_CACHE_SIZE)

# RFC 4647 section 2.1 basic language range, with "_" folded to "-" first (some HTTP clients
# send POSIX-style "zh_CN"; nothing else could be meant by it).
_RANGE = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_WEIGHT = re.compile(r"[ \t]*q[ \t]*=[ \t]*(\S*)[ \t]*", re.IGNORECASE)

# No shipped tag has more subtags than this; a longer prefix of a range can never match one.
_MAX_SUBTAGS = max(tag.count("-") + 1 for tag in SHIPPED)

# Language subtags that mean a shipped language under another code (CLDR languageAlias):
# Mandarin, Iranian Persian, Dari (Afghan Persian, written in the same script) and Standard
# Arabic. Browsers send the short codes; some operating systems and apps send these.
_LANGUAGE_ALIASES = {"cmn": "zh", "pes": "fa", "prs": "fa", "arb": "ar"}

# Chinese: a range becomes zh-Hans or zh-Hant before lookup, never bare "zh". The script is
# the range's own script subtag when it has one; otherwise the region's usual script, from
# CLDR's likely subtags (zh_TW -> zh_Hant_TW, zh_SG -> zh_Hans_SG, ...); otherwise the
# language's (zh -> Hans, Cantonese yue -> Hant).
_CHINESE_DEFAULT_SCRIPT = {"zh": "hans", "yue": "hant"}
_HANT_REGIONS = frozenset(
    # CLDR likelySubtags: zh_<region> -> zh_Hant_<region>. Every other region (CN, SG, MY and
    # any unlisted one) takes the language's default, Hans.
    {"tw", "hk", "mo", "au", "bn", "gb", "gf", "id", "pa", "pf", "ph", "sr", "th", "us", "vn"}
)
# Bopomofo (and Han with Bopomofo) annotate Traditional characters, in Taiwan.
_SCRIPTS = {"hans": "zh-Hans", "hant": "zh-Hant", "bopo": "zh-Hant", "hanb": "zh-Hant"}
_HAN_UNSPECIFIED = "hani"


def negotiate(accept_language: str | None, offered: Sequence[str], default: str) -> str:
    """The page's language for a request: the first tag of ``offered`` that RFC 4647 lookup
    finds for the ``Accept-Language`` ranges in preference order, else ``default``.

    ``offered`` holds canonical tags from :data:`SHIPPED` (what ``[page] languages`` holds after
    validation); any other entry is never chosen. Ranges are tried by weight, highest first,
    equal weights in header order; ``q=0`` ranges, ``*`` and malformed ranges are skipped. A
    Chinese range maps to its script (``zh-HK`` -> zh-Hant, ``zh-SG`` -> zh-Hans) and never
    falls back to the other script. Never raises; the work is bounded whatever the header holds.
    """
    if not accept_language:
        return default
    candidates = _cache.get(accept_language)
    if candidates is None:
        candidates = _candidates(accept_language)
        if len(accept_language) <= _CACHE_KEY_MAX:
            _cache.put(accept_language, candidates)
    for tag in candidates:
        if tag in offered:
            return tag
    return default


def _candidates(header: str) -> tuple[str, ...]:
    """Every shipped tag the header accepts, in the order lookup would try them.

    This depends on the header alone (not on ``offered``), so it is what the cache keeps:
    lookup over ``offered`` is then the first of these that is offered, because ``offered``
    is a subset of :data:`SHIPPED`.
    """
    weighted: list[tuple[float, str]] = []
    pieces = header[:MAX_LENGTH].split(",", MAX_RANGES)
    if len(pieces) > MAX_RANGES or len(header) > MAX_LENGTH:
        # The last piece is the unparsed rest, or a range cut in the middle.
        pieces.pop()
    for piece in pieces:
        parsed = _weighted_range(piece)
        if parsed is not None:
            weighted.append(parsed)
    # sorted() is stable: equal weights keep the header's order.
    weighted.sort(key=lambda item: -item[0])
    found: list[str] = []
    for _, language_range in weighted:
        for tag in _lookup_tags(language_range):
            if tag not in found:
                found.append(tag)
    return tuple(found)


def _weighted_range(piece: str) -> tuple[float, str] | None:
    """(weight, lowercased range) of one list element, or None to skip it (empty, malformed,
    ``*``, or weight 0: "not acceptable")."""
    language_range, semicolon, params = piece.partition(";")
    language_range = language_range.strip(" \t").lower().replace("_", "-")
    if not _RANGE.fullmatch(language_range):
        # "*" lands here too: in lookup it matches nothing in particular, and when nothing
        # else matches the default is what the caller gets anyway (RFC 4647 section 3.4).
        return None
    q = 1.0
    if semicolon:
        weight = _WEIGHT.fullmatch(params)
        if weight is None or not _QVALUE.fullmatch(weight.group(1)):
            return None
        q = float(weight.group(1))
    if q <= 0.0:
        return None
    return q, language_range


def _lookup_tags(language_range: str) -> list[str]:
    """The shipped tags RFC 4647 lookup reaches from one (lowercased, well-formed) range, most
    specific first."""
    subtags = language_range.split("-")
    language = subtags[0]
    if language in ("x", "i"):
        # Private use, or an irregular grandfathered tag: nothing geofence ships.
        return []
    if len(subtags) > 1 and len(subtags[1]) == 3 and subtags[1].isalpha():
        # An extended language subtag names a variety of the language before it ("zh-yue",
        # "zh-cmn-Hans-CN", "ar-arb"): the variety when geofence knows it, else the language
        # itself, which is where lookup's truncation would have arrived anyway.
        extlang = subtags.pop(1)
        if extlang in _CHINESE_DEFAULT_SCRIPT or extlang in _LANGUAGE_ALIASES:
            language = extlang
    language = _LANGUAGE_ALIASES.get(language, language)
    subtags[0] = language
    if language in _CHINESE_DEFAULT_SCRIPT:
        chinese = _chinese(language, subtags[1:])
        return [chinese] if chinese else []
    tags: list[str] = []
    # Only a prefix as long as the longest shipped tag can match; looking at no more keeps
    # the work per range constant however many subtags it has.
    del subtags[_MAX_SUBTAGS:]
    while subtags:
        tag = _BY_FOLDED.get("-".join(subtags))
        if tag is not None:
            tags.append(tag)
        subtags.pop()
        # Truncation never ends on a singleton ("en-x" is not a tag: go on to "en").
        if subtags and len(subtags[-1]) == 1:
            subtags.pop()
    return tags


def _chinese(language: str, rest: list[str]) -> str | None:
    """zh-Hans or zh-Hant for a Chinese (or Cantonese) range, or None for a script geofence
    does not ship (``zh-Latn``: pinyin)."""
    script = region = None
    if rest and len(rest[0]) == 4 and rest[0].isalpha():
        script = rest.pop(0)
    if rest and (
        (len(rest[0]) == 2 and rest[0].isalpha()) or (len(rest[0]) == 3 and rest[0].isdigit())
    ):
        region = rest[0]
    if script is not None and script != _HAN_UNSPECIFIED:
        return _SCRIPTS.get(script)
    if region is not None:
        if language == "yue" and region == "cn":
            return "zh-Hans"
        if region in _HANT_REGIONS:
            return "zh-Hant"
        if language == "zh":
            return "zh-Hans"
    return _SCRIPTS[_CHINESE_DEFAULT_SCRIPT[language]]


# -- Catalogues --------------------------------------------------------------------------------


#: The page's fixed words, in English: the msgids of every shipped catalogue.
MSGIDS: tuple[str, ...] = (
    "Not available in your region",
    "Account suspended",
    "Temporarily unavailable",
    "This service is not available in your country, region, or territory.",
    "Access for this account is suspended because of repeated requests from a country, region, "
    "or territory where this service is not available.",
    "This service is temporarily unavailable. Please try again later.",
    "What you can do",
    "More information",
    "If you think this is a mistake, contact support and give them this reference:",
    "Reference",
    "Error %(status)s",
    "Unavailable For Legal Reasons",
    "Forbidden",
    "Service Unavailable",
    "Please try again in a few minutes.",
    "If your account should not be suspended, contact support and give them this reference:",
)

DOMAIN = "geofence"
# LOCALE_DIR (a pathlib.Path), the catalogues: ``<lang>/LC_MESSAGES/geofence.po`` (source)
# and ``.mo`` (compiled, shipped). Made on first use by __getattr__ below: pathlib and gettext
# load when a page is first rendered, not into every process that imports geofence.
_translators: dict[str, Callable[[str], str]] = {}


def __getattr__(name: str) -> Any:
    if name == "LOCALE_DIR":
        from pathlib import Path

        directory = globals()["LOCALE_DIR"] = Path(__file__).with_name("locale")
        return directory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _identity(message: str) -> str:
    return message


def catalogue_path(lang: str) -> Path:
    """Where the compiled catalogue of shipped language ``lang`` lives in the package."""
    # The global once made (or set by a test), else made now.
    directory: Path = globals().get("LOCALE_DIR") or __getattr__("LOCALE_DIR")
    return directory / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def translator(lang: str) -> Callable[[str], str]:
    """``gettext`` for ``lang`` from its shipped catalogue, loaded once. A language geofence does
    not ship (or a catalogue that cannot be read) gives the identity: the English msgid."""
    tag = canonical(lang)
    if tag is None:
        return _identity
    found = _translators.get(tag)
    if found is None:
        found = _translators[tag] = _load(tag)
    return found


def _load(tag: str) -> Callable[[str], str]:
    import gettext  # once per language, when its first page is built

    try:
        with catalogue_path(tag).open("rb") as mo:
            return gettext.GNUTranslations(mo).gettext
    except (OSError, ValueError) as error:
        # A broken install must not break the block page: it shows English instead.
        logger.warning(
            "geofence: the %s page catalogue cannot be read (%s); using English", tag, error
        )
        return _identity
