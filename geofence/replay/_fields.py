"""Field decoding every reader shares: times, request targets, addresses with ports.

Each function returns None for a value it cannot read; the reader then reports the line as
unparsable with its own words.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# RFC 3339 / ISO 8601 with a zone (Z or an offset); any number of fraction digits (Cloudflare's
# rfc3339ns has nine). A space for the T is accepted (CSV exports often write one).
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*([Zz]|[+-]\d\d:?\d\d)\Z"
)
_CLF = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z")
_NUMBER = re.compile(r"(\d{1,20})(?:\.(\d{1,9}))?\Z")


def _zone(text: str) -> timezone | None:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def iso_time(text: str) -> datetime | None:
    """An RFC 3339 time with a zone, in UTC; None without a zone or when malformed."""
    match = _ISO.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = _zone(zone)
    if tz is None:
        return None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
        return moment.astimezone(UTC) if tz is not UTC else moment
    except (ValueError, OverflowError):  # no such day; or beyond year 1..9999 in UTC
        return None


def clf_time(text: str) -> datetime | None:
    """nginx ``$time_local`` / Apache ``%t`` (``10/Oct/2000:13:55:36 -0700``), in UTC."""
    match = _CLF.match(text)
    if match is None:
        return None
    day, mon, year, hour, minute, second, sign, zh, zm = match.groups()
    month = _MONTHS.get(mon)
    if month is None or int(zh) > 23 or int(zm) > 59:
        return None
    offset = timedelta(hours=int(zh), minutes=int(zm))
    try:
        local = datetime(int(year), month, int(day), int(hour), int(minute), int(second), 0, UTC)
        # The wall time minus its offset is UTC: no tzinfo object per distinct offset needed.
        return local - offset if sign == "+" else local + offset
    except (ValueError, OverflowError):
        return None


class ClfMinutes:
    """:func:`clf_time` with the minute remembered: a busy log repeats its minute on many
    lines with distinct seconds, so only the seconds are read for most of them."""

    __slots__ = ("_base", "_key")

    def __init__(self) -> None:
        self._key = ""
        self._base: datetime | None = None

    def time(self, text: str) -> datetime | None:
        # "10/Oct/2000:13:55:36 -0700": the minute and zone without the seconds.
        if len(text) != 26 or text[17] != ":" or not text[18:20].isdigit():
            return clf_time(text)
        key = text[:17] + text[20:]
        if key != self._key:
            base = clf_time(text[:18] + "00" + text[20:])
            if base is None:
                return None
            self._key, self._base = key, base
        second = int(text[18:20])
        if second > 59 or self._base is None:
            return None
        try:
            return self._base + timedelta(seconds=second)
        except OverflowError:  # 31/Dec/9999:23:59:59 -0000
            return None


def epoch_seconds(text: str) -> datetime | None:
    """nginx ``$msec`` (``1720483200.123``): seconds since 1970 with a fraction, exactly (the
    fraction is read as digits, never through a float)."""
    match = _NUMBER.match(text.strip())
    if match is None:
        return None
    whole, fraction = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return _EPOCH + timedelta(seconds=int(whole), microseconds=micro)
    except OverflowError:
        return None


def duration(text: str) -> timedelta | None:
    """A duration in seconds with a fraction (nginx ``$request_time``, CloudFront
    ``time-taken``), read exactly; None when it is not one."""
    match = _NUMBER.match(text.strip())
    if match is None:
        return None
    whole, fraction = match.groups()
    try:
        return timedelta(seconds=int(whole), microseconds=int((fraction or "0")[:6].ljust(6, "0")))
    except OverflowError:
        return None


def started(ended: datetime, took: str) -> datetime:
    """When a request that ``ended`` after ``took`` seconds came in (what the app decided
    at); ``ended`` when ``took`` is no duration."""
    length = duration(took) if took else None
    if length is None:
        return ended
    try:
        return ended - length
    except OverflowError:
        return ended


def epoch_number(value: int) -> datetime | None:
    """An integer timestamp of unknown unit (Cloudflare's ``unix`` seconds, ``unixnano``
    nanoseconds; milli- and microseconds by other pipelines), told apart by its size: any of
    them for a date between 1973 and 5138 has a distinct number of digits."""
    if value < 0:
        return None
    try:
        if value < 10**11:
            return _EPOCH + timedelta(seconds=value)
        if value < 10**14:
            return _EPOCH + timedelta(milliseconds=value)
        if value < 10**17:
            return _EPOCH + timedelta(microseconds=value)
        return _EPOCH + timedelta(microseconds=value // 1000)
    except OverflowError:
        return None


def request_target(target: str) -> tuple[str, str] | None:
    """(routed path, host from an absolute URL or "") of an HTTP request target.

    The path is the target without its query string and fragment, percent-decoded as UTF-8
    with invalid sequences replaced (as uvicorn fills ASGI's ``path`` and Werkzeug/Django
    decode WSGI's ``PATH_INFO``); an encoded slash (``%2F``) becomes ``/``, as it does for the
    frameworks. The absolute form (``GET http://host:80/p``, proxies and ALB logs) gives its
    host without the port. None for a target with no path (``*``, ``host:443`` of CONNECT).
    """
    host = ""
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or not scheme.isalpha():
            return None
        authority, slash, tail = rest.partition("/")
        host = _without_port(authority.rpartition("@")[2])
        target = slash + tail if slash else "/"
    cut = len(target)
    for mark in ("?", "#"):
        at = target.find(mark)
        if 0 <= at < cut:
            cut = at
    raw = target[:cut]
    return (unquote(raw, errors="replace") if "%" in raw else raw), host


def _without_port(authority: str) -> str:
    if authority.startswith("["):
        return authority[1:].partition("]")[0].lower()
    return authority.partition(":")[0].lower()


def host_of(value: str) -> str:
    """A Host header value as a log recorded it: lower-case, without port or brackets."""
    return "" if value in ("", "-") else _without_port(value.strip())


def split_port(text: str) -> str | None:
    """The address of an ``address:port`` field: ``1.2.3.4:5678``, ``[2001:db8::1]:5678`` or
    ALB's unbracketed ``2001:db8::1:5678`` (the port follows the last colon). None for ``-``."""
    if text in ("", "-"):
        return None
    if text.startswith("["):
        return text[1:].partition("]")[0]
    head, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return text  # no port written
    if ":" in head or "." in head:
        return head
    return text
