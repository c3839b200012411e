"""The log formats by name, and auto-detection from a file's first lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

from geofence.replay import _alb, _cloudflare, _cloudfront, _combined, _csv, _jsonl
from geofence.replay._record import Parsed, Record
from geofence.replay._source import Numbered, ReplayError

Reader = Callable[[Iterator[Numbered]], Iterator[Parsed]]

# The order breaks ties in detection: the most specific layouts first.
_MODULES: tuple[ModuleType, ...] = (_cloudfront, _alb, _cloudflare, _jsonl, _csv, _combined)
FORMATS: dict[str, Reader] = {m.NAME: m.records for m in _MODULES}
TITLES: dict[str, str] = {m.NAME: m.TITLE for m in _MODULES}
SAMPLE_LINES = 20  # non-blank lines detection looks at


def reader(name: str) -> Reader:
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(["auto", *FORMATS])
        raise ReplayError(f"unknown log format {name!r}; formats: {known}") from None


def detect(sample: list[Numbered], source: str) -> str:
    """The format that reads the most of ``sample`` (a file's first non-blank lines) as
    records; ties go to the more specific format; "" for an empty sample. A file none reads
    raises ReplayError naming every format tried."""
    best, best_count = "", 0
    for name, read in FORMATS.items():
        count = sum(1 for item in read(iter(sample)) if isinstance(item, Record))
        if count > best_count:
            best, best_count = name, count
    if best or not sample:
        return best  # "" for an empty log: nothing to read, nothing to report
    first = sample[0][1]
    shown = first if len(first) <= 80 else first[:77] + "..."
    tried = ", ".join(f"{name} ({TITLES[name]})" for name in FORMATS)
    raise ReplayError(
        f"{source}: no known log format in its first {len(sample)} line(s); tried {tried}; "
        f"first line: {shown!r}; give --format if it is one of them"
    )
