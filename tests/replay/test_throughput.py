"""A throughput smoke figure: lines per second on a generated 200,000-line combined log,
parse only and replayed. Printed (run with ``-s`` to see it), never asserted: the numbers
depend on the machine; bench/ (issue 11) holds the measured targets."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence.replay import Record, read_log, replay

LINES = 200_000


def write_log(path: Path, lines: int, clients: int) -> None:
    """Clients drawn with a long tail (a few busy, many seen once), from the City test
    database's networks and elsewhere; a request every ~0.3 s; ids in paths."""
    rng = random.Random(11)
    prefixes = ["175.16.199.", "81.2.69.", "89.160.20.", "216.160.83.", "2.125.160.", "67.43.156."]
    pool = [f"{rng.choice(prefixes)}{rng.randrange(1, 255)}" for _ in range(clients)]
    weights = [1 / (rank + 1) for rank in range(clients)]
    peers = rng.choices(pool, weights, k=lines)
    routes = ["/v1/models", "/v1/chat/completions", "/v1/files/{}", "/static/app.js", "/"]
    start = datetime(2024, 7, 8, 18, tzinfo=timezone.utc)
    with path.open("w") as out:
        for n, peer in enumerate(peers):
            moment = start + timedelta(milliseconds=300 * n)
            route = rng.choice(routes).format(rng.randrange(50))
            out.write(
                f'{peer} - - [{moment:%d/%b/%Y:%H:%M:%S +0000}] "GET {route}?n={n} HTTP/1.1" '
                f'200 {rng.randrange(9999)} "-" "Mozilla/5.0 (X11; Linux x86_64)"\n'
            )


@pytest.mark.slow  # a measurement more than a test: once per CI run is enough
def test_throughput_smoke(tmp_path: Path, policy: dict[str, Any]) -> None:
    log = tmp_path / "big.log"
    write_log(log, LINES, clients=5_000)
    started = time.perf_counter()
    with read_log(log) as opened:
        parsed = sum(1 for item in opened if isinstance(item, Record))
    parse_only = time.perf_counter() - started
    started = time.perf_counter()
    report = replay([log], policy=policy)
    replayed = time.perf_counter() - started
    assert parsed == report.records == LINES
    print(
        f"\nreplay throughput on {LINES:,} combined lines: parse only {LINES / parse_only:,.0f} "
        f"lines/s, replay {LINES / replayed:,.0f} lines/s "
        f"({report.decisions:,} decisions, {100 * replayed / parse_only - 100:.0f} % over parsing)"
    )
