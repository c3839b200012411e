"""Cloudflare Logpush, dataset ``http_requests``, as newline-delimited JSON.

Layout: Cloudflare Logs reference, "HTTP requests" fields
(https://developers.cloudflare.com/logs/reference/log-fields/zone/http_requests/): one JSON
object per line with the fields the job selected. Fields used: ``ClientIP`` (peer: the
address that connected to Cloudflare, which an app behind it receives as CF-Connecting-IP),
``ClientRequestMethod``, ``ClientRequestURI`` (path and query; else ``ClientRequestPath``),
``ClientRequestHost``, ``EdgeStartTimestamp`` in any of Logpush's ``timestamp_format``
choices: ``unixnano`` (the default, an integer of nanoseconds), ``unix`` (seconds) and
``rfc3339`` (a string, with or without fractions: rfc3339ms, rfc3339ns). With custom log
fields, ``RequestHeaders`` (an object of lower-case header names) gives ``x-forwarded-for``
as the forwarding header. A line without ``ClientIP`` is not of this dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from geofence.replay._fields import epoch_number, epoch_seconds, host_of, iso_time, request_target
from geofence.replay._record import Parsed, Record, Unparsable
from geofence.replay._source import Numbered

NAME = "cloudflare"
TITLE = "Cloudflare Logpush JSON (http_requests)"


def edge_time(value: Any) -> datetime | None:
    """``EdgeStartTimestamp`` in whichever format the Logpush job chose."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return epoch_number(value)
    if isinstance(value, float):
        # A JSON number with a fraction: seconds (a larger unit has no fraction to write).
        return epoch_seconds(repr(value)) if 0 <= value < 10**11 else epoch_number(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return epoch_number(int(text))
        return iso_time(text)
    return None


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested ten thousand deep
            yield Unparsable(number, line, "not JSON")
            continue
        if not isinstance(item, dict) or "ClientIP" not in item:
            yield Unparsable(number, line, "not a Logpush http_requests object (no ClientIP)")
            continue
        moment = edge_time(item.get("EdgeStartTimestamp"))
        if moment is None:
            yield Unparsable(number, line, "EdgeStartTimestamp missing or not a time")
            continue
        method = item.get("ClientRequestMethod")
        uri = item.get("ClientRequestURI") or item.get("ClientRequestPath")
        if not isinstance(method, str) or not method or not isinstance(uri, str):
            yield Unparsable(number, line, "ClientRequestMethod or ClientRequestURI missing")
            continue
        target = request_target(uri)
        if target is None:
            yield Unparsable(number, line, "ClientRequestURI is not a path")
            continue
        peer = item.get("ClientIP")
        host = item.get("ClientRequestHost")
        headers = item.get("RequestHeaders")
        forwarded = None
        if isinstance(headers, dict):
            value = headers.get("x-forwarded-for")
            forwarded = value if isinstance(value, str) and value else None
        yield Record(
            moment,
            peer if isinstance(peer, str) and peer else None,
            forwarded,
            method,
            target[0],
            host_of(host) if isinstance(host, str) else target[1],
            None,
            number,
        )
