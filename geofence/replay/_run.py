"""``replay()``: files -> records -> decisions -> :class:`Report`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain, islice
from typing import Any

from geofence._engine import Engine
from geofence._model import Decision
from geofence.replay._formats import SAMPLE_LINES, detect, reader
from geofence.replay._loop import Decider, decide_all, engine_of
from geofence.replay._record import Parsed, Record, Unparsable
from geofence.replay._report import (
    KEEP_UNPARSABLE,
    FileSummary,
    Report,
    Shown,
    Totals,
)
from geofence.replay._source import (
    STDIN,
    ReplayError,
    TruncatedLog,
    numbered_lines,
    open_binary,
)

PathLike = str | os.PathLike[str]


class LogFile:
    """One log, opened: its format (given or detected) and its parsed lines, streamed.
    Use as a context manager, or iterate to the end (the file is closed then)."""

    def __init__(self, path: PathLike, format: str = "auto") -> None:
        self.path = os.fspath(path) if os.fspath(path) != STDIN else "(standard input)"
        self._opened = open_binary(path)
        self._stream = self._opened.stream
        lines = numbered_lines(self._stream)
        try:
            if format == "auto":
                sample = list(islice(_non_blank(lines), SAMPLE_LINES))
                self.format = detect(sample, self.path)
                lines = chain(sample, lines)
            else:
                reader(format)  # an unknown name is an error before anything is read
                self.format = format
        except TruncatedLog as error:
            self._opened.close()
            raise ReplayError(f"{self.path}: cannot be read: {error.why}") from None
        except BaseException:
            self._opened.close()
            raise
        self._lines = lines

    def __iter__(self) -> Iterator[Parsed]:
        try:
            if self.format:
                try:
                    yield from reader(self.format)(self._lines)
                except TruncatedLog as error:
                    yield Unparsable(error.line, "", f"the file is cut or corrupt: {error.why}")
        finally:
            self._opened.close()

    def close(self) -> None:
        self._opened.close()

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _non_blank(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    return (item for item in lines if item[1].strip())


def read_log(path: PathLike, format: str = "auto") -> LogFile:
    """Open one access log (plain or gzip) and read it as records and unparsable lines."""
    return LogFile(path, format)


def replay(
    paths: PathLike | Iterable[PathLike],
    policy: Engine | Any = None,
    baseline: Engine | Any = None,
    at: datetime | None = None,
    format: str = "auto",
) -> Report:
    """Decide every line of the access logs ``paths`` with ``policy`` (and ``baseline``).

    ``policy`` and ``baseline``: an Engine, a Policy, a dict or a .toml / .json path (what
    ``Engine.from_config`` takes). ``at``: decide every line at this aware time instead of
    its own. ``format``: "auto" or one of :data:`FORMATS`. Raises ConfigError for a bad
    policy and ReplayError for a log that cannot be read or recognised (before anything is
    decided when every log is given up front); an unparsable line is only counted.
    """
    if policy is None:
        raise ReplayError("replay needs a policy (an Engine, a dict or a .toml / .json path)")
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ReplayError("at must be an aware datetime")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    engine = engine_of(policy)
    base = engine_of(baseline) if baseline is not None else None
    # Every log's format first, so that an unreadable or unknown tenth file stops the replay
    # before nine are decided for nothing.
    formats: list[tuple[PathLike, str]] = []
    for path in paths:
        if os.fspath(path) == STDIN:  # read once, so detected when its turn comes
            if any(os.fspath(p) == STDIN for p, _ in formats):
                raise ReplayError("standard input (-) can be read only once")
            formats.append((path, format))
            continue
        with read_log(path, format) as log:
            formats.append((path, log.format))
    decider = Decider(engine, base, at)
    report = Report(baseline=Totals() if base is not None else None, at=at)
    for path, found in formats:
        log = read_log(path, found or format)
        summary = FileSummary(log.path, log.format or "empty")
        report.files.append(summary)
        _replay_file(log, summary, decider, report)
    report.decisions = decider.asked
    report.hostless = decider.hostless
    return report


def decisions(
    records: Iterable[Record],
    policy: Engine | Any,
    baseline: Engine | Any = None,
    at: datetime | None = None,
) -> Iterator[tuple[Record, Decision, Decision | None]]:
    """The decision step alone: each record with its decision (and the baseline's, or None),
    as :func:`replay` makes them (same memo, same client-IP rules). For analyses of your own,
    and the base of the Arrow record batch step."""
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ReplayError("at must be an aware datetime")
    decider = Decider(engine_of(policy), engine_of(baseline) if baseline is not None else None, at)
    for record, (decision, base, _, _) in decide_all(records, decider):
        yield record, decision, base


def _replay_file(log: LogFile, summary: FileSummary, decider: Decider, report: Report) -> None:
    def records() -> Iterator[Record]:
        for item in log:
            if isinstance(item, Record):
                summary.records += 1
                yield item
            else:
                summary.unparsable += 1
                report.unparsable += 1
                if len(report.shown) < KEEP_UNPARSABLE:
                    text = item.text if len(item.text) <= 200 else item.text[:197] + "..."
                    report.shown.append(Shown(log.path, item.line, item.why, text))

    totals, base_totals = report.policy, report.baseline
    transitions, newly = report.transitions, report.newly_blocked_countries
    first, last = report.first, report.last
    for record, (_, _, after, before) in decide_all(records(), decider):
        path = record.path
        totals.count(after, path)
        kind = after[0]
        if before is not None and base_totals is not None:
            was = before[0]
            base_totals.count(before, path)
            transitions[(was, kind)] += 1
            if kind == "block" and was != "block":
                newly[after[2]] += 1
        elif kind == "block":
            newly[after[2]] += 1
        moment = record.time
        if first is None or moment < first:
            first = moment
        if last is None or moment > last:
            last = moment
    report.first, report.last = first, last
