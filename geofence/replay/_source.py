"""Opening a log: plain or gzip (told by its magic bytes, not its name), lines without their
CR LF, numbered from 1. Streaming: one line in memory at a time."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
Numbered = tuple[int, str]


class ReplayError(ValueError):
    """A log that cannot be replayed at all (missing, unreadable, of no known format): the
    CLI's exit status 2. A bad *line* is never one of these: it is counted as unparsable."""


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` as a binary stream, decompressed when it starts with the gzip magic bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
    except OSError as error:
        raise ReplayError(f"{os.fspath(path)}: {error.strerror or error}") from None
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as error:
        raw.close()
        raise ReplayError(f"{os.fspath(path)}: {error.strerror or error}") from None
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def numbered_lines(stream: BinaryIO) -> Iterator[Numbered]:
    """The stream's lines, decoded as UTF-8 (bad bytes replaced: a log line is never fatal),
    each without its LF or CR LF, with its 1-based number. A lone CR inside a line stays: only
    LF ends a line (universal newlines would split a field that holds a CR)."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
    number = 0
    try:
        for raw in text:
            number += 1
            if raw.endswith("\n"):
                yield number, raw[:-2] if raw.endswith("\r\n") else raw[:-1]
            else:
                yield number, raw
    except (OSError, EOFError) as error:
        # A truncated or corrupt gzip member: what was read counts; the rest cannot be read.
        raise TruncatedLog(number + 1, str(error) or type(error).__name__) from None


class TruncatedLog(Exception):
    """The stream ended in an error after ``line - 1`` good lines (a cut gzip file)."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why
