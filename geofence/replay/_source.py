"""Opening a log: plain or gzip (told by its magic bytes, not its name), lines without their
CR LF, numbered from 1. Streaming: one line in memory at a time."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
Numbered = tuple[int, str]


class ReplayError(ValueError):
    """A log that cannot be replayed at all (missing, unreadable, of no known format): the
    CLI's exit status 2. A bad *line* is never one of these: it is counted as unparsable."""


STDIN = "-"  # the path that means standard input


class Opened:
    """A log's byte stream (decompressed when gzip) and what to close when done: a
    GzipFile does not close the file under it. Standard input is never closed."""

    def __init__(self, stream: BinaryIO, raw: BinaryIO | None) -> None:
        self.stream = stream
        self._raw = raw

    def close(self) -> None:
        if self._raw is None:
            return
        try:
            self.stream.close()
        finally:
            self._raw.close()


def open_binary(path: str | os.PathLike[str]) -> Opened:
    """``path`` (or ``-``: standard input) as a binary stream, decompressed when it starts
    with the gzip magic bytes."""
    name = os.fspath(path)
    if name == STDIN:
        stdin = sys.stdin.buffer
        try:
            magic = stdin.peek(2)[:2] if isinstance(stdin, io.BufferedReader) else b""
        except OSError as error:
            raise ReplayError(f"standard input: {error.strerror or error}") from None
        if magic == GZIP_MAGIC:
            return Opened(gzip.GzipFile(fileobj=stdin, mode="rb"), None)  # type: ignore[arg-type]
        return Opened(stdin, None)
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed by Opened.close)
    except OSError as error:
        raise ReplayError(f"{name}: {error.strerror or error}") from None
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as error:
        raw.close()
        raise ReplayError(f"{name}: {error.strerror or error}") from None
    if magic == GZIP_MAGIC:
        return Opened(gzip.GzipFile(fileobj=raw, mode="rb"), raw)  # type: ignore[arg-type]
    return Opened(raw, raw)


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
    finally:
        # The stream belongs to the caller, who closes it: let the wrapper go without it
        # (a wrapper dropped while its stream is open is reported as an unclosed file).
        with contextlib.suppress(ValueError):
            text.detach()


class TruncatedLog(Exception):
    """The stream ended in an error after ``line - 1`` good lines (a cut gzip file)."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why
