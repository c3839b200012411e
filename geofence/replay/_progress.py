"""A progress line on a terminal: lines read, bytes of the file read (of the compressed file
for gzip), and the rate. Redrawn at most ``1 / interval`` times a second, on one line, and
erased at the end, so the report printed after it starts on a clean line.

Only for a terminal: the CLI makes one when standard error is a TTY and the JSON report
does not go to standard output; in a pipe nothing is written. The clock is injectable, so
that tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
Position = Callable[[], "tuple[int | None, int | None]"]
CHECK_EVERY = 256  # lines between two clock reads: a clock read per line would show in a bench
_UNITS = ("B", "kB", "MB", "GB", "TB")


def wants_progress(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def size(n: float) -> str:
    """Bytes for people: 0 B, 999 B, 1.2 kB, 34.5 MB (powers of 1000, as disks are sold)."""
    for unit in _UNITS:
        if n < 1000 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Progress:
    """Draws ``file: 12,345 lines, 1.2 MB of 4.5 MB (27 %), 45,000 lines/s`` on ``stream``.

    ``clock``: monotonic seconds (default :func:`time.monotonic`); ``interval``: least
    seconds between two redraws."""

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] | None = None,
        interval: float = 0.1,
        check_every: int | None = None,
    ) -> None:
        self.stream = stream
        self.clock = clock or time.monotonic
        self.interval = interval
        self.check_every = max(1, CHECK_EVERY if check_every is None else check_every)
        self.lines = 0  # every line read, in every file so far
        self.drawn = 0  # how many times the line was drawn
        self._started: float | None = None
        self._next = 0.0
        self._width = 0  # of the text on screen, to erase it

    def track(self, items: Iterable[T], name: str, position: Position) -> Iterator[T]:
        """``items`` (one per line of the file ``name``), drawing the progress as they go;
        ``position()`` gives (bytes read, file size), each None when unknown."""
        if self._started is None:
            self._started = self.clock()
            self._next = self._started + self.interval
        check = self.check_every
        countdown = check
        for item in items:
            self.lines += 1
            countdown -= 1
            if not countdown:
                countdown = check
                now = self.clock()
                if now >= self._next:
                    self._next = now + self.interval
                    self.draw(name, position(), now)
            yield item

    def draw(self, name: str, where: tuple[int | None, int | None], now: float) -> None:
        done, total = where
        elapsed = now - (self._started if self._started is not None else now)
        parts = [f"{name}: {self.lines:,} lines"]
        if done is not None:
            read = size(done)
            if total:
                read += f" of {size(total)} ({100 * min(done, total) / total:.0f} %)"
            parts.append(read)
        if elapsed > 0:
            parts.append(f"{self.lines / elapsed:,.0f} lines/s")
        text = ", ".join(parts)
        pad = " " * max(0, self._width - len(text))
        self._write("\r" + text + pad)
        self._width = len(text)
        self.drawn += 1

    def clear(self) -> None:
        """Erases the line (the report follows on a clean line); nothing if never drawn."""
        if self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a terminal gone away must not stop the replay
