"""CSV with a header line naming the columns as nginx's variables are (``time_iso8601`` or
``msec``, ``remote_addr``, ``http_x_forwarded_for``, ``request_method``, ``request_uri``,
``host``; see :mod:`geofence.replay._variables`), in any order, other columns ignored.
RFC 4180 quoting; a comma, semicolon or tab delimiter, told from the header. The header must
name ``remote_addr`` and a time column; each line is one record (a quoted field may not
span lines: a log line is one line)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from geofence.replay._record import Parsed, Unparsable
from geofence.replay._source import Numbered
from geofence.replay._variables import TIME_FIELDS, row_record

NAME = "csv"
TITLE = "CSV with a header (nginx variable names)"


def _header(line: str) -> tuple[list[str], str] | None:
    for delimiter in (",", "\t", ";"):
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:  # a NUL byte (Python < 3.11), a field over the size limit
            return None
        names = [n.strip().lower().lstrip("$") for n in cells]
        if "remote_addr" in names and any(t in names for t in TIME_FIELDS):
            return names, delimiter
    return None


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    header: tuple[list[str], str] | None = None
    for number, line in lines:
        if not line.strip():
            continue
        if header is None:
            header = _header(line.lstrip("\ufeff"))
            if header is None:
                # Lines before the header cannot be read; the next line may be it.
                yield Unparsable(number, line, "not a CSV header naming remote_addr and a time")
            continue
        names, delimiter = header
        try:
            values = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as error:
            yield Unparsable(number, line, f"CSV: {error}")
            continue
        if len(values) != len(names):
            yield Unparsable(number, line, f"{len(values)} columns, the header has {len(names)}")
            continue
        yield row_record(dict(zip(names, values, strict=True)), number, line)
