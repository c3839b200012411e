"""``--jobs N``: one replay over N worker processes, its reports merged into one.

The work is split into *parts*: every gzip file, every CSV and CloudFront file (whose header
line names the columns of the lines after it) is one part; any other plain file is cut into
byte ranges aligned to line starts (a line belongs to the range its first byte is in), about
one range per job of the whole input's size. Each worker replays its parts with its own
engines and memo and returns a :class:`Report` per part; the parent merges them in file and
byte order (:meth:`Report.merge`), so totals, transitions, the first unparsable lines shown
and the first and last times are those of ``--jobs 1``. Each line is still decided at its own
time by the engine, whichever worker reads it, so the phase segments stay exact. Only
``decisions`` (engine calls) differs: each worker fills its own memo.

Workers are started with the "spawn" context (a fresh interpreter: nothing inherited from the
parent's threads or open databases), and closed and joined before :func:`replay_jobs`
returns, also on an error.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from geofence._engine import Engine
from geofence.config._policy import Policy
from geofence.replay._accounts import memory_policy
from geofence.replay._formats import reader
from geofence.replay._loop import Decider, engine_of
from geofence.replay._record import Parsed, Unparsable
from geofence.replay._report import FileSummary, Report, Totals
from geofence.replay._run import PathLike, _replay_file, read_log
from geofence.replay._source import GZIP_MAGIC, STDIN, ReplayError, TruncatedLog

# Formats whose lines can be read without the lines before them (no header line).
SPLITTABLE = frozenset({"combined", "alb", "jsonl", "cloudflare"})
MIN_RANGE = 1 << 20  # a smaller file, or a smaller share of one, is not worth a process


@dataclass(frozen=True)
class Part:
    """A file, or the lines starting in bytes [start, end) of one (end None: to its end)."""

    index: int  # which of the given paths
    path: str
    format: str
    start: int = 0
    end: int | None = None


def plan(paths: Iterable[PathLike], format: str, jobs: int) -> list[Part]:
    """The parts of ``paths``, in order; every file's format is found first (an unreadable
    or unknown file is a ReplayError before any worker starts)."""
    files: list[tuple[str, str, int, bool]] = []
    for path in paths:
        name = os.fspath(path)
        if name == STDIN:
            raise ReplayError("standard input (-) cannot be shared between --jobs; use --jobs 1")
        with read_log(name, format) as log:
            found = log.format
        try:
            with open(name, "rb") as raw:
                gzipped = raw.read(2) == GZIP_MAGIC
            size = os.path.getsize(name)
        except OSError as error:
            raise ReplayError(f"{name}: {error.strerror or error}") from None
        files.append((name, found, size, gzipped))
    total = sum(size for _, _, size, _ in files)
    share = max(MIN_RANGE, -(-total // jobs))  # bytes per range: ceil(total / jobs)
    parts: list[Part] = []
    for index, (name, found, size, gzipped) in enumerate(files):
        pieces = -(-size // share) if found in SPLITTABLE and not gzipped else 1
        if pieces <= 1:
            parts.append(Part(index, name, found))
            continue
        step = -(-size // pieces)
        for start in range(0, size, step):
            parts.append(Part(index, name, found, start, min(start + step, size)))
    return parts


def _lines_from(stream: BinaryIO, start: int, end: int | None) -> Iterator[tuple[int, str]]:
    """The numbered lines (as :func:`~geofence.replay._source.numbered_lines` gives them)
    whose first byte is in [start, end)."""
    number = 0
    if start:
        # The lines before the range are counted, not decoded: line numbers stay the file's.
        left = start
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                break
            number += chunk.count(b"\n")
            left -= len(chunk)
        if not chunk.endswith(b"\n"):
            # The range starts inside a line: that line belongs to the range before.
            number += 1
            stream.readline()
    position = stream.tell()
    for raw in stream:
        if end is not None and position >= end:
            break
        position += len(raw)
        number += 1
        line = raw.decode("utf-8", "replace")
        if line.endswith("\n"):
            yield number, line[:-2] if line.endswith("\r\n") else line[:-1]
        else:
            yield number, line


class _Range:
    """What :func:`~geofence.replay._run._replay_file` reads of a part: its path, format and
    parsed lines."""

    def __init__(self, part: Part) -> None:
        self.path = part.path
        self.format = part.format
        self._part = part

    def __iter__(self) -> Iterator[Parsed]:
        part = self._part
        with open(part.path, "rb") as stream:
            lines = _lines_from(stream, part.start, part.end)
            try:
                yield from reader(part.format)(lines)
            except TruncatedLog as error:  # pragma: no cover (plain files only)
                yield Unparsable(error.line, "", f"the file is cut or corrupt: {error.why}")


# The engines of this worker process, built once by _start.
_worker: dict[str, Any] = {}
# The process ids of the last replay_jobs' workers (its tests check they are gone).
workers: set[int] = set()


def _start(policy: Any, baseline: Any, at: datetime | None) -> None:
    engine = engine_of(memory_policy(policy))
    base = engine_of(memory_policy(baseline)) if baseline is not None else None
    _worker["decider"] = (engine, base, at)


def _replay_part(part: Part) -> tuple[int, int, Report]:
    engine, base, at = _worker["decider"]
    decider = Decider(engine, base, at, shared=True)
    report = Report(baseline=Totals() if base is not None else None, at=at)
    summary = FileSummary(part.path, part.format or "empty")
    report.files.append(summary)
    log: Any = (
        _Range(part) if part.start or part.end is not None else read_log(part.path, part.format)
    )
    _replay_file(log, summary, decider, report)
    report.decisions = decider.asked
    report.hostless = decider.hostless
    return part.index, os.getpid(), report


def replay_jobs(
    paths: PathLike | Iterable[PathLike],
    policy: Any,
    baseline: Any = None,
    at: datetime | None = None,
    format: str = "auto",
    jobs: int = 2,
) -> Report:
    """:func:`~geofence.replay.replay` over ``jobs`` processes (see the module docstring).
    ``policy`` and ``baseline`` are sent to the workers, so they are a .toml / .json path or
    a mapping (an Engine or a Policy cannot be: it holds open databases). As in
    :func:`~geofence.replay.replay`, ``[accounts] store`` is replaced by ``memory://``."""
    if jobs < 1:
        raise ReplayError("jobs must be at least 1")
    if policy is None:
        raise ReplayError("replay needs a policy (an Engine, a dict or a .toml / .json path)")
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ReplayError("at must be an aware datetime")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for given in (policy, baseline):
        if isinstance(given, (Engine, Policy)):
            raise ReplayError(
                "--jobs sends the policy to worker processes: give it as a .toml / .json "
                "path or a mapping, not an Engine or a Policy"
            )
    engine_of(memory_policy(policy))  # a bad policy is a ConfigError here, not per worker
    if baseline is not None:
        engine_of(memory_policy(baseline))
    parts = plan(paths, format, jobs)
    report = Report(baseline=Totals() if baseline is not None else None, at=at)
    workers.clear()
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(jobs, len(parts)) or 1, _start, (policy, baseline, at))
    try:
        files: list[FileSummary] = []
        for index, pid, part_report in pool.imap(_replay_part, parts):
            workers.add(pid)
            report.merge(part_report)
            summary = part_report.files[0]
            if len(files) > index:  # another range of the same file: one summary per file
                files[index].records += summary.records
                files[index].unparsable += summary.unparsable
            else:
                files.append(summary)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    report.files = files
    return report
