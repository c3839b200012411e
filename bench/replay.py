"""Replay throughput, parallel speed-up and memory, measured side by side in one run (issue 11).

    python bench/replay.py                 # 1,000,000 lines, 50,000 clients (a few minutes)
    python bench/replay.py --lines 200000  # quicker
    python bench/replay.py --profile       # also: where a replay's time goes (cProfile)

The log is generated (seeded, so every run reads the same bytes) as nginx combined lines over
one day, and kept in bench/results/ (gitignored) for the next run. Clients are clustered as
real traffic is: every one of the N distinct clients opens at least one *session* (a burst of
requests a few seconds apart, ~10 on average), and more sessions go to clients by a Zipf-like
popularity (weight 1/rank), so a few clients are busy and most are seen once or twice; about
200 sessions are open at any moment, their lines interleaved. A third of the addresses are in
the City test database's networks (CN, GB, SE, US, ...), the rest spread over the IPv4 space
(mostly not found). Paths: a handful of API routes, one of them with a per-client id, and query
strings that differ on every line.

Each figure is the median of ``--rounds`` (3) runs, each in a fresh child process (so that one
measurement's memory or caches never help another), which reports its time and its peak RSS
(``resource.getrusage``; ``RUSAGE_CHILDREN`` added for --jobs workers):

* parse only: the same reader (``read_log``) over the same file, no decisions;
* replay ``--jobs 1`` and ``--jobs 2``: ``geofence replay``'s code path, report included;
* peak RSS of a --jobs 1 replay of the first 200,000 lines and of the whole file.

Targets (issue 11): replay at least 50 % of parse-only lines/s; --jobs 2 at least 1.6x
--jobs 1 on 2 cores; peak RSS under 200 MB whatever the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CITY_DB = str(ROOT / "tests" / "data" / "maxmind" / "test-data" / "GeoIP2-City-Test.mmdb")
KNOWN = ["175.16.199.", "81.2.69.", "89.160.20.", "216.160.83.", "2.125.160.", "67.43.156."]
ROUTES = ["/v1/models", "/v1/chat/completions", "/v1/files/{id}", "/static/app.js", "/"]


def bench_policy() -> dict[str, Any]:
    """The tests' candidate policy: a dated block (CN, RU), a path rule, a report-mode rule."""
    return {
        "geoip": {"country_db": CITY_DB},
        "rules": [
            {
                "name": "unsupported",
                "action": "block",
                "regions": ["CN", "RU"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2024-07-09T00:00:00Z",
            },
            {"name": "gb-api", "action": "warn", "regions": ["GB"], "paths": ["/v1/*"]},
            {"name": "jp-dry-run", "action": "block", "regions": ["JP", "US"], "mode": "report"},
        ],
    }


def _address(rng: random.Random) -> str:
    if rng.random() < 1 / 3:
        return f"{rng.choice(KNOWN)}{rng.randrange(1, 255)}"
    a, b, c = rng.randrange(11, 223), rng.randrange(256), rng.randrange(256)
    return f"{a}.{b}.{c}.{rng.randrange(1, 255)}"


def write_log(path: Path, lines: int, clients: int, seed: int = 11) -> None:
    """See the module docstring: sessions of clustered clients, interleaved, over a day."""
    rng = random.Random(seed)
    pool: list[str] = []
    seen: set[str] = set()
    while len(pool) < clients:
        address = _address(rng)
        if address not in seen:
            seen.add(address)
            pool.append(address)
    weights = [1 / (rank + 1) for rank in range(clients)]
    # Every client's first session, then as many more as the line budget leaves room for
    # (sessions average ~10 lines), by popularity; shuffled together.
    sessions = pool + rng.choices(pool, weights, k=max(0, lines // 10 - clients))
    rng.shuffle(sessions)
    queue = iter(sessions)

    def next_client() -> str:
        return next(queue, None) or rng.choices(pool, weights)[0]

    start = datetime(2024, 7, 8, 12, tzinfo=timezone.utc)
    step = 86_400 / lines  # seconds per line: the file spans a day, across the enforce date
    open_sessions: list[list[Any]] = []
    written = 0
    with path.open("w") as out:
        while written < lines:
            while len(open_sessions) < 200:
                client = next_client()
                open_sessions.append(
                    [client, max(1, int(rng.expovariate(1 / 10))), rng.randrange(999)]
                )
            index = rng.randrange(len(open_sessions))
            session = open_sessions[index]
            client, remaining, ident = session
            moment = start + timedelta(seconds=step * written)
            route = rng.choice(ROUTES).format(id=ident)
            out.write(
                f'{client} - - [{moment:%d/%b/%Y:%H:%M:%S +0000}] "GET {route}?n={written} '
                f'HTTP/1.1" 200 {rng.randrange(9999)} "-" "Mozilla/5.0 (X11; Linux x86_64)"\n'
            )
            written += 1
            if remaining <= 1:
                open_sessions[index] = open_sessions[-1]
                open_sessions.pop()
            else:
                session[1] = remaining - 1


def _peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def child(mode: str, log: str, jobs: int, profile: bool) -> None:
    """One measurement, in this fresh process: prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    from geofence.replay import Record, read_log, replay

    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if mode == "parse":
        with read_log(log) as opened:
            lines = sum(1 for item in opened if isinstance(item, Record))
    else:
        if jobs > 1:
            from geofence.replay._jobs import replay_jobs

            report = replay_jobs([log], policy=bench_policy(), jobs=jobs)
        elif profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            report = profiler.runcall(replay, [log], policy=bench_policy())
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(15)
        else:
            report = replay([log], policy=bench_policy())
        lines = report.records
        extra = {"decisions": report.decisions, "blocked": report.policy.kinds.get("block", 0)}
    seconds = time.perf_counter() - started
    own, children = _peak_rss_mb()
    print(
        json.dumps(
            {"lines": lines, "seconds": seconds, "rss": own, "rss_children": children, **extra}
        )
    )


def measure(mode: str, log: Path, jobs: int = 1, rounds: int = 1) -> dict[str, Any]:
    """The round with the median time (each round a fresh process)."""
    results = sorted((_measure(mode, log, jobs) for _ in range(rounds)), key=_seconds)
    return results[len(results) // 2]


def _seconds(result: dict[str, Any]) -> float:
    return float(result["seconds"])


def _measure(mode: str, log: Path, jobs: int = 1, profile: bool = False) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(log), "--jobs", str(jobs)]
    if profile:
        command.append("--profile")
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{mode} --jobs {jobs} failed:\n{done.stderr}")
    if profile:
        print(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cached_log(lines: int, clients: int) -> Path:
    folder = HERE / "results"  # gitignored
    folder.mkdir(exist_ok=True)
    log = folder / f"replay-{lines}-{clients}.log"
    if not log.exists():
        partial = log.with_suffix(".partial")
        write_log(partial, lines, clients)
        partial.rename(log)
    return log


def head(log: Path, lines: int) -> Path:
    part = log.with_name(f"{log.stem}-head{lines}.log")
    if not part.exists():
        with log.open() as source, part.open("w") as out:
            for _, line in zip(range(lines), source, strict=False):
                out.write(line)
    return part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the median is shown")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of --jobs 1")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "LOG"), help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.jobs, args.profile)
        return
    log = cached_log(args.lines, args.clients)
    with log.open() as lines:
        distinct = len({line.split(" ", 1)[0] for line in lines})
    print(
        f"log: {log} ({args.lines:,} lines, {distinct:,} distinct clients), {os.cpu_count()} cores"
    )
    if args.profile:
        _measure("replay", log, 1, profile=True)
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    parse = measure("parse", log, 1, args.rounds)
    one = measure("replay", log, 1, args.rounds)
    two = measure("replay", log, 2, args.rounds)
    rate = lambda r: r["lines"] / r["seconds"]  # noqa: E731
    print(
        f"parse only       {rate(parse):>10,.0f} lines/s  ({parse['seconds']:.1f} s, "
        f"peak RSS {parse['rss']:.0f} MB)"
    )
    print(
        f"replay --jobs 1  {rate(one):>10,.0f} lines/s  ({one['seconds']:.1f} s, "
        f"peak RSS {one['rss']:.0f} MB, {one['decisions']:,} engine decisions)"
    )
    print(
        f"replay --jobs 2  {rate(two):>10,.0f} lines/s  ({two['seconds']:.1f} s, peak RSS "
        f"{two['rss']:.0f} MB parent, {two['rss_children']:.0f} MB largest worker)"
    )
    ratio = rate(one) / rate(parse)
    speedup = one["seconds"] / two["seconds"]
    print(f"replay / parse-only: {100 * ratio:.0f} % (target >= 50 %)")
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print(f"--jobs 2 / --jobs 1: {speedup:.2f}x (target >= 1.6x)")
    if args.lines > 200_000:
        small = _measure("replay", head(log, 200_000), 1)
        print(
            f"peak RSS --jobs 1: {small['rss']:.0f} MB at 200,000 lines, "
            f"{one['rss']:.0f} MB at {args.lines:,} (target < 200 MB)"
        )
    assert one["lines"] == two["lines"] == parse["lines"], "every line decided"
    assert one["blocked"] == two["blocked"], "--jobs 2 decides as --jobs 1"


if __name__ == "__main__":
    main()
