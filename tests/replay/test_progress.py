"""The progress line: on a terminal only, lines and bytes read (the compressed position for
gzip) and the rate, redrawn at most ten times a second by an injected clock, erased at the
end; never in a pipe nor with ``--json -``."""

from __future__ import annotations

import functools
import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from geofence import cli
from geofence.cli import _replay as cli_replay
from geofence.replay import replay
from geofence.replay._progress import Progress, size, wants_progress


class FakeTTY(io.StringIO):
    """A terminal as far as the replay can tell."""

    def isatty(self) -> bool:
        return True


class Clock:
    """Moves ``step`` seconds at each read."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def write_log(path: Path, lines: int) -> None:
    rows = [
        json.dumps(
            {
                "time_iso8601": f"2024-07-09T00:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
                "remote_addr": f"81.2.69.{n % 200 + 1}",
                "request_method": "GET",
                "request_uri": f"/v1/items/{n}",
            }
        )
        for n in range(lines)
    ]
    data = ("\n".join(rows) + "\n").encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def frames(text: str) -> list[str]:
    """What was drawn: the text between carriage returns, without trailing blanks."""
    return [f.rstrip() for f in text.split("\r") if f.strip()]


def test_redrawn_at_most_ten_times_a_second() -> None:
    screen = FakeTTY()
    clock = Clock(step=0.01)  # a line every 10 ms: 100 lines a second
    progress = Progress(screen, clock=clock, check_every=1)
    items = list(progress.track(range(1000), "access.log", lambda: (None, None)))
    assert items == list(range(1000))
    drawn = frames(screen.getvalue())
    # 10 s of lines at 0.1 s apart at most: about 100 redraws, never one per line.
    assert 90 <= progress.drawn <= 101
    assert len(drawn) == progress.drawn
    assert drawn[-1].startswith("access.log: 1,000 lines") or drawn[-1].startswith("access.log: 99")
    rate = re.search(r"([\d,]+) lines/s", drawn[-1])
    assert rate is not None and 95 <= int(rate.group(1).replace(",", "")) <= 105


def test_the_clock_is_read_only_every_check_every_lines() -> None:
    clock = Clock(step=1.0)
    progress = Progress(FakeTTY(), clock=clock, check_every=256)
    for _ in progress.track(range(1024), "x", lambda: (None, None)):
        pass
    assert clock.reads == 1 + 1024 // 256  # the start, then once per 256 lines


def test_cleared_at_the_end() -> None:
    screen = FakeTTY()
    progress = Progress(screen, clock=Clock(step=1.0), check_every=1)
    for _ in progress.track(range(3), "a.log", lambda: (30, 90)):
        pass
    shown = screen.getvalue()
    assert "a.log: 3 lines, 30 B of 90 B (33 %)" in shown
    progress.clear()
    after = screen.getvalue()[len(shown) :]
    # One carriage return, blanks as wide as the longest text, another carriage return.
    assert re.fullmatch(r"\r +\r", after)
    width = max(len(f) for f in screen.getvalue().split("\r"))
    assert len(after) - 2 >= len(frames(shown)[-1]) and len(after) - 2 <= width
    progress.clear()  # twice: nothing more
    assert screen.getvalue().endswith(after)


def test_never_drawn_nothing_to_clear() -> None:
    screen = FakeTTY()
    progress = Progress(screen, clock=Clock(step=0.0), check_every=1)
    for _ in progress.track(range(10), "a.log", lambda: (None, None)):
        pass
    progress.clear()
    assert screen.getvalue() == ""


@pytest.mark.parametrize("name", ["big.jsonl", "big.jsonl.gz"])
def test_bytes_read_are_the_files_own(tmp_path: Path, name: str) -> None:
    log = tmp_path / name
    write_log(log, 5000)
    on_disk = log.stat().st_size
    screen = FakeTTY()
    progress = Progress(screen, clock=Clock(step=0.05), check_every=100)
    report = replay(log, policy={"rules": []}, progress=progress)
    assert report.records == 5000
    drawn = frames(screen.getvalue())
    assert drawn, "nothing drawn"
    # The total is the file's size on disk (compressed for gzip), the position grows to it.
    assert all(f" of {size(on_disk)} (" in f for f in drawn)
    shares = [int(m.group(1)) for f in drawn if (m := re.search(r"\((\d+) %\)", f))]
    assert shares == sorted(shares) and shares[-1] >= 50
    assert screen.getvalue().endswith("\r")  # cleared by replay() itself


def test_standard_streams() -> None:
    assert wants_progress(FakeTTY())
    assert not wants_progress(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not wants_progress(closed)  # isatty() on a closed stream raises ValueError


def run_cli(monkeypatch: pytest.MonkeyPatch, stderr: io.StringIO, *args: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stderr", stderr)
    # The CLI's own Progress, with a clock that moves a second per read and a check per line.
    monkeypatch.setattr(
        cli_replay, "Progress", functools.partial(Progress, clock=Clock(1.0), check_every=1)
    )
    return cli.main(list(args)), stderr.getvalue()


def test_cli_draws_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.jsonl"
    write_log(log, 50)
    status, err = run_cli(monkeypatch, FakeTTY(), "replay", str(log))
    out = capsys.readouterr().out
    assert status == 0
    assert "a.jsonl: 50 lines" in err and "lines/s" in err
    assert err.endswith("\r")  # erased before the report
    assert "\r" not in out and "50 lines" in out
    # In a pipe: nothing.
    status, err = run_cli(monkeypatch, io.StringIO(), "replay", str(log))
    assert status == 0 and err == "" and "50 lines" in capsys.readouterr().out
    # With the JSON report on standard output: nothing either.
    status, err = run_cli(monkeypatch, FakeTTY(), "replay", str(log), "--json", "-")
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert status == 0 and err == "" and document["records"] == 50
