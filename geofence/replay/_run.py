"""``replay()``: files -> records -> decisions -> :class:`Report`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain, islice
from typing import Any

from geofence._engine import Engine
from geofence._model import Decision
from geofence.config._policy import Policy
from geofence.replay._accounts import Accounts, FieldTap, account_tap, memory_policy
from geofence.replay._formats import SAMPLE_LINES, detect, reader
from geofence.replay._loop import Decider, decide_all, engine_of
from geofence.replay._progress import Progress
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

    def __init__(
        self, path: PathLike, format: str = "auto", account_field: str | None = None
    ) -> None:
        self.path = os.fspath(path) if os.fspath(path) != STDIN else "(standard input)"
        self._opened = open_binary(path)
        self._size: int | None = None
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
        # --account-field: a named field of each line (JSON lines, CSV) is the account.
        self._tap: FieldTap | None = None
        if account_field is not None and self.format:
            try:
                self._tap = account_tap(self.format, account_field)
            except BaseException:
                self._opened.close()
                raise
            if self._tap is not None:
                lines = self._tap.lines(lines)
        self._lines = lines

    def position(self) -> tuple[int | None, int | None]:
        """(bytes of the file read so far, its size): for gzip, of the compressed file, so
        the fraction done is right whatever the compression ratio; (None, None) for standard
        input or a file that cannot tell."""
        raw = self._opened._raw  # the file on disk (None: standard input)
        if raw is None or raw.closed:
            return None, None
        try:
            if self._size is None:
                self._size = os.fstat(raw.fileno()).st_size
            return raw.tell(), self._size
        except (OSError, ValueError):
            return None, None

    def __iter__(self) -> Iterator[Parsed]:
        try:
            if self.format:
                try:
                    tap = self._tap
                    if tap is None:
                        yield from reader(self.format)(self._lines)
                    else:
                        for parsed in reader(self.format)(self._lines):
                            if isinstance(parsed, Record):
                                yield parsed._replace(user=tap.value(parsed))
                            else:
                                yield parsed
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


def read_log(path: PathLike, format: str = "auto", account_field: str | None = None) -> LogFile:
    """Open one access log (plain or gzip) and read it as records and unparsable lines.
    ``account_field``: the field that holds the account (JSON lines, CSV, Cloudflare; for
    combined only ``remote_user``); None: the format's user field."""
    return LogFile(path, format, account_field)


def replay(
    paths: PathLike | Iterable[PathLike],
    policy: Engine | Any = None,
    baseline: Engine | Any = None,
    at: datetime | None = None,
    format: str = "auto",
    accounts: bool = False,
    account_field: str | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> Report:
    """Decide every line of the access logs ``paths`` with ``policy`` (and ``baseline``).

    ``policy`` and ``baseline``: an Engine, a Policy, a dict or a .toml / .json path (what
    ``Engine.from_config`` takes). ``at``: decide every line at this aware time instead of
    its own. ``format``: "auto" or one of :data:`FORMATS`. ``accounts``: run the account
    rules for lines with an account (``account_field``, or the format's user field) on a
    memory store: ``report.accounts`` then holds them (see :mod:`geofence.replay._accounts`).
    ``progress``: a :class:`~geofence.replay._progress.Progress` to show lines and bytes read.
    A policy or baseline given as a path or a mapping is loaded with ``[accounts] store``
    replaced by ``memory://``: a replay never connects to the production store. Raises
    ConfigError for a bad policy and ReplayError for a log that cannot be read or recognised
    (before anything is decided when every log is given up front); an unparsable line is
    only counted. ``jobs``: replay in that many processes (see :mod:`geofence.replay._jobs`;
    the policies then as paths or mappings; not with ``accounts`` nor standard input).
    """
    if jobs != 1:
        if accounts:
            raise ReplayError("accounts are followed line by line: use jobs=1")
        from geofence.replay._jobs import replay_jobs

        return replay_jobs(paths, policy, baseline, at, format, jobs)
    if policy is None:
        raise ReplayError("replay needs a policy (an Engine, a dict or a .toml / .json path)")
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ReplayError("at must be an aware datetime")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    # Paths and mappings are loaded with a memory store (never the production Redis); an
    # Engine or Policy already made is used as it is.
    loaded = policy if isinstance(policy, (Engine, Policy)) else memory_policy(policy)
    engine = engine_of(loaded)
    base = None
    if baseline is not None:
        base = engine_of(
            baseline if isinstance(baseline, (Engine, Policy)) else memory_policy(baseline)
        )
    people = Accounts(memory_policy(loaded), at) if accounts else None
    # Every log's format first, so that an unreadable or unknown tenth file stops the replay
    # before nine are decided for nothing.
    formats: list[tuple[PathLike, str]] = []
    for path in paths:
        if os.fspath(path) == STDIN:  # read once, so detected when its turn comes
            if any(os.fspath(p) == STDIN for p, _ in formats):
                raise ReplayError("standard input (-) can be read only once")
            formats.append((path, format))
            continue
        with read_log(path, format, account_field if accounts else None) as log:
            formats.append((path, log.format))
    decider = Decider(engine, base, at, shared=True)  # outcomes only: see Decider
    report = Report(baseline=Totals() if base is not None else None, at=at)
    try:
        for path, found in formats:
            log = read_log(path, found or format, account_field if accounts else None)
            summary = FileSummary(log.path, log.format or "empty")
            report.files.append(summary)
            _replay_file(log, summary, decider, report, people, progress)
    finally:
        if progress is not None:
            progress.clear()
    report.decisions = decider.asked
    report.hostless = decider.hostless
    if people is not None:
        people.finish()
        report.accounts = people
        report.notes.extend(n for n in people.notes() if n not in report.notes)
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


def _replay_file(
    log: LogFile,
    summary: FileSummary,
    decider: Decider,
    report: Report,
    people: Accounts | None = None,
    progress: Progress | None = None,
) -> None:
    items: Iterable[Parsed] = log
    if progress is not None:
        items = progress.track(log, log.path, log.position)

    def records() -> Iterator[Record]:
        for item in items:
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
    for record, (decision, _, after, before) in decide_all(records(), decider):
        if people is not None and record.user is not None:
            people.decide(record, record.user, decision)
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
