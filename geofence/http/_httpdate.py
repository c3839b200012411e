"""Date formats for HTTP headers: IMF-fixdate (RFC 9110) and Structured Field Dates (RFC 9651)."""

from __future__ import annotations

from datetime import datetime, timezone

# Fixed English names: strftime's %a / %b follow the process locale, HTTP dates must not.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _utc(moment: datetime) -> datetime:
    # The policy only holds aware times; a naive one is read as UTC rather than as local time,
    # so a header never depends on the server's time zone.
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def imf_fixdate(moment: datetime) -> str:
    """``Tue, 09 Jul 2024 00:00:00 GMT``: the HTTP-date form used by ``Sunset`` (RFC 8594)."""
    t = _utc(moment)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def sf_date(moment: datetime) -> str:
    """``@1719273600``: the Structured Field Date used by ``Deprecation`` (RFC 9745)."""
    # Floor, not truncation, so a fractional second before the epoch still rounds down (// is
    # floor division; math is not imported for this).
    return f"@{int(_utc(moment).timestamp() // 1)}"
