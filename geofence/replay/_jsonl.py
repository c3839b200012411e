"""JSON lines: one object per line, its keys named as nginx's variables are (what
``log_format ... escape=json '{"time_iso8601":"$time_iso8601",...}'`` writes). The fields
read are listed in :mod:`geofence.replay._variables`. An object needs ``remote_addr`` and a
time field to be of this format (Cloudflare's objects have ``ClientIP`` instead)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from geofence.replay._record import Parsed, Unparsable
from geofence.replay._source import Numbered
from geofence.replay._variables import TIME_FIELDS, row_record

NAME = "jsonl"
TITLE = "JSON lines (nginx variable names)"


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested ten thousand deep
            yield Unparsable(number, line, "not JSON")
            continue
        if not isinstance(item, dict) or "remote_addr" not in item:
            yield Unparsable(number, line, "not an object with remote_addr")
            continue
        if not any(name in item for name in TIME_FIELDS):
            yield Unparsable(number, line, "no time_iso8601, msec or time_local")
            continue
        yield row_record(item, number, line)
