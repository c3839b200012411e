"""JSON lines and CSV whose fields are named as nginx's variables are: the mapping from a
row (a dict of variable name -> text) to a record, shared by both formats.

Variables read (https://nginx.org/en/docs/http/ngx_http_core_module.html#variables and
https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format): the time from
``time_iso8601`` (ISO 8601 with its zone), else ``msec`` (seconds since 1970 with a fraction),
else ``time_local``; nginx writes them when the request ends, so ``msec`` less
``request_time`` (when the row has it) is the request's start; ``remote_addr`` (peer);
``http_x_forwarded_for`` (forwarding header); ``request_method`` and ``request_uri`` (target
with query; the path is taken from it), else ``request`` (the request line); ``host``, else
``http_host``; ``remote_user`` (user). ``-`` and an empty value mean absent, as nginx writes
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from geofence.replay._combined import request_line
from geofence.replay._fields import (
    clf_time,
    epoch_seconds,
    host_of,
    iso_time,
    request_target,
    started,
)
from geofence.replay._record import Parsed, Record, Unparsable

TIME_FIELDS = ("time_iso8601", "msec", "time_local")


def _text(row: Mapping[str, object], name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "" if text == "-" else text


def _time(row: Mapping[str, object]) -> datetime | str | None:
    iso = _text(row, "time_iso8601")
    if iso:
        return iso_time(iso)
    msec = _text(row, "msec")
    if msec:
        return epoch_seconds(msec)
    local = _text(row, "time_local")
    if local:
        return clf_time(local)
    return "no time_iso8601, msec or time_local"


def row_record(row: Mapping[str, object], number: int, line: str) -> Parsed:
    moment = _time(row)
    if moment is None:
        return Unparsable(number, line, "time is not ISO 8601 with a zone / msec / time_local")
    if isinstance(moment, str):
        return Unparsable(number, line, moment)
    if "msec" in row and not _text(row, "time_iso8601"):
        # $msec is when the request ended, to the millisecond, as is $request_time: their
        # difference is when the app decided. (The whole-second times are not corrected:
        # their truncation is as large an error the other way.)
        moment = started(moment, _text(row, "request_time"))
    method = _text(row, "request_method")
    uri = _text(row, "request_uri")
    host = ""
    if method and uri:
        target = request_target(uri)
        if target is None:
            return Unparsable(number, line, "request_uri is not a path")
        path, host = target
    elif _text(row, "request"):
        parsed = request_line(_text(row, "request"))
        if isinstance(parsed, str):
            return Unparsable(number, line, parsed)
        method, path, host = parsed
    else:
        return Unparsable(number, line, "no request_method and request_uri (nor request)")
    peer = _text(row, "remote_addr") or None
    forwarded = _text(row, "http_x_forwarded_for") or None
    host = host_of(_text(row, "host") or _text(row, "http_host")) or host
    user = _text(row, "remote_user") or None
    return Record(moment, peer, forwarded, method, path, host, user, number)
