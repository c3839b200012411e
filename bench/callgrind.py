"""geofence in instructions: callgrind counts per decision and per request, one table.

    python bench/callgrind.py                 # 3-6 minutes on 2 cores
    python bench/callgrind.py --json OUT.json

Wall-clock figures on a shared machine move with its load; the number of instructions a
decision or a request executes does not. Each measurement runs in a process under
``valgrind --tool=callgrind``, which counts only the measured loop (see ``_valgrind.py``):
instructions per call = (count for N calls - count for the same loop over nothing) / N.

Measured, on the real-size GeoIP2-Country file (``realdb.py``) and on the embedded default:
``Engine.decide()`` for a new IPv4 client, a new IPv6 client and a repeated one, against one
raw lookup of the same addresses (``maxminddb`` C-extension ``reader.get()``, or
``iptocc.country_code()``); and each adapter in-process in front of the same bare app
(``apps.py``, called as ``inprocess.py`` calls it), for a repeated client, a new client and a
repeated client behind a trusted proxy, as instructions added per request and as a percentage
of the bare app. Of geofence itself only the public API is used (``Engine``, ``RequestInfo``,
the adapters' documented entry points, through ``apps.py``), so the script can be copied
into a checkout of an older version and compare before with after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.extend([str(PROJECT), str(PROJECT / "adapters")])

import _provenance  # noqa: E402
import _valgrind  # noqa: E402

# One process per (what, database); the processes are independent and run in parallel.
KINDS = ("decide", "Django", "Flask", "Starlette")
DATABASES = ("mmdb", "embedded")
DB_TITLES = {"mmdb": "real-size GeoIP2-Country", "embedded": "embedded default"}
CLIENTS = ("repeated", "new", "proxied")
CLIENT_TITLES = {
    "repeated": "repeated client",
    "new": "new client (each in a new network)",
    "proxied": "repeated client via trusted proxy (X-Forwarded-For)",
}
PACKAGES = ("geofence-middleware", "Django", "Flask", "starlette", "maxminddb", "iptocc")


@dataclass(frozen=True)
class Sizes:
    decide_repeated: int = 2000  # decide() calls per repeated-client loop
    decide_new: int = 500  # decide() calls per new-client loop
    requests: int = 40  # requests per adapter loop
    warmup: int = 30  # calls in each of the two warm-up loops before a case is measured
    rounds: int = 3  # measurements of each case, one after another, in each process
    layouts: int = 5  # processes per group, each with its memory laid out differently


# -- the measured process ------------------------------------------------------------------------

Measured = _valgrind.Measured


# (number of calls, round) -> the loop, over inputs made now. Cases that compare two things
# (raw lookup and decide(), bare app and geofence) get the same new clients in the same round.
Prepare = Callable[[int, str], Measured]


@dataclass
class Case:
    label: str
    prepare: Prepare


def _wsgi(app: Any, clients: Sequence[tuple[str, str | None]]) -> Measured:
    from inprocess import _environ, _start_response

    environs = [_environ(*client) for client in clients]

    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        start = _start_response
        begin()
        for environ in environs:
            result = app(environ, start)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        end()

    return go


def _asgi(
    app: Any, clients: Sequence[tuple[str, str | None]], loop: asyncio.AbstractEventLoop
) -> Measured:
    from inprocess import _receive, _scope, _send

    scopes = [_scope(*client) for client in clients]

    async def many(begin: Callable[[], None], end: Callable[[], None]) -> None:
        begin()
        for scope in scopes:
            await app(scope, _receive, _send)
        end()

    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        loop.run_until_complete(many(begin, end))

    return go


class Clients:
    """Client addresses, the same in every process and every run (fixed seeds): each new
    client lies in a database network that no earlier one came from (``workload.py``)."""

    def __init__(self, reader: Any) -> None:
        from workload import Addresses

        self._reader = reader
        self._addresses = Addresses()

        self._made: dict[tuple[int, int, str], list[str]] = {}

    def new(self, count: int, ip_version: int, key: str) -> list[str]:
        """``count`` clients never handed out before, unless under the same ``key``."""
        made = self._made.get((count, ip_version, key))
        if made is None:
            made = self._made[count, ip_version, key] = self._addresses.new_networks(
                count, self._reader, ip_version
            )
        return made


def _blocked(reader: Any) -> str:
    """An address that both the database and the embedded default place in CN (blocked by
    the example policy); from its own address supply, so the measured clients do not move."""
    from iptocc import country_code
    from workload import Addresses

    supply = Addresses(seed=7)
    for _ in range(100):
        for ip in supply.new_networks(200, reader):
            record = reader.get(ip)
            if record["country"]["iso_code"] == "CN" and country_code(ip) == "CN":
                return ip
    raise RuntimeError("no CN address found in the database")


def _decide_cases(
    db: str, config: dict[str, Any], reader: Any, clients: Clients, sizes: Sizes
) -> list[Case]:
    from iptocc import country_code
    from workload import HEADERS, HOST, PATH, REPEATED

    import geofence

    engine = geofence.Engine.from_config(config)
    raw: Callable[[str], object] = reader.get if db == "mmdb" else country_code

    def info(peer: str) -> geofence.RequestInfo:
        return geofence.RequestInfo(peer=peer, headers=HEADERS, method="GET", path=PATH, host=HOST)

    decision = engine.decide(info(REPEATED))
    if decision.country != "US" or decision.client_ip != REPEATED:
        raise RuntimeError(f"unexpected decision for {REPEATED}: {decision!r}")

    cases = [Case("loop", lambda n, key: _valgrind.loop(callable, [None] * n))]
    for v in (4, 6):
        # The raw lookup and decide() get the same addresses (the raw reader caches nothing).
        cases += [
            Case(f"raw/new-v{v}", lambda n, key, v=v: _valgrind.loop(raw, clients.new(n, v, key))),
            Case(
                f"decide/new-v{v}",
                lambda n, key, v=v: _valgrind.loop(
                    engine.decide, [info(a) for a in clients.new(n, v, key)]
                ),
            ),
        ]
    cases += [
        Case("raw/repeated", lambda n, key: _valgrind.loop(raw, [REPEATED] * n)),
        Case("decide/repeated", lambda n, key: _valgrind.loop(engine.decide, [info(REPEATED)] * n)),
    ]
    return cases


def clients_measured(db: str) -> tuple[str, ...]:
    """A repeated client is answered from a cache whatever the database: measured once."""
    return CLIENTS if db == "mmdb" else ("new",)


def _adapter_cases(
    kind: str, db: str, config: dict[str, Any], clients: Clients, blocked: str
) -> tuple[list[Case], asyncio.AbstractEventLoop | None]:
    import apps
    from inprocess import PROXY, _asgi_status, _wsgi_status
    from workload import REPEATED

    loop: asyncio.AbstractEventLoop | None = None
    variants: dict[str, Any]
    if kind == "Django":
        bare, fenced = apps.django_handlers(config)
        variants = {"bare": bare, "geofence": fenced}
    elif kind == "Flask":
        variants = {
            "bare": apps.flask_app(None).wsgi_app,
            "geofence": apps.flask_app(config).wsgi_app,
        }
    else:
        loop = asyncio.new_event_loop()
        variants = {
            "bare": apps.starlette_app(None),
            "geofence": apps.starlette_app(config),
            "passthrough": _passthrough_app(),
        }

    def status(app: Any, client: tuple[str, str | None]) -> int:
        if loop is None:
            return _wsgi_status(app, client)
        return _asgi_status(app, client, loop)

    got = (
        status(variants["bare"], (blocked, None)),
        status(variants["geofence"], (blocked, None)),
        status(variants["geofence"], (REPEATED, None)),
        status(variants["geofence"], (PROXY, blocked)),
    )
    if got != (200, 451, 200, 451):
        raise RuntimeError(f"{kind}: statuses {got}, expected (200, 451, 200, 451)")

    def measured(app: Any, chosen: list[tuple[str, str | None]]) -> Measured:
        return _wsgi(app, chosen) if loop is None else _asgi(app, chosen, loop)

    supply: dict[str, Callable[[int, str], list[tuple[str, str | None]]]] = {
        "repeated": lambda n, key: [(REPEATED, None)] * n,
        "new": lambda n, key: [(ip, None) for ip in clients.new(n, 4, key)],
        "proxied": lambda n, key: [(PROXY, REPEATED)] * n,
    }
    cases: list[Case] = []
    for client in clients_measured(db):
        for variant in ("bare", "geofence"):
            app = variants[variant]
            cases.append(
                Case(
                    f"{kind}/{variant}/{client}",
                    lambda n, key, app=app, client=client: measured(app, supply[client](n, key)),
                )
            )
    if "passthrough" in variants and db == "mmdb":
        app = variants["passthrough"]
        cases.append(
            Case(
                f"{kind}/passthrough/repeated",
                lambda n, key, app=app: measured(app, supply["repeated"](n, key)),
            )
        )
    return cases, loop


def _passthrough_app() -> Any:
    """The bare Starlette app behind a BaseHTTPMiddleware that only calls the next app:
    the cost of the most common way to write a Starlette middleware, for comparison."""
    import apps
    from starlette.middleware.base import BaseHTTPMiddleware

    app = apps.starlette_app(None)

    async def dispatch(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=dispatch)
    return app


_KEEP: list[object] = []


def _shift_layout(index: int) -> None:
    """Lay the process out in its own way before anything is imported.

    The same request costs a few hundred instructions more or less depending on where
    objects land in memory and on the order types were made in: dictionaries keyed by
    identity probe further, the interpreter's type-attribute cache collides more or less.
    Any change to the code moves that, so a single process would show differences of
    +-0.5 % of a Django request that have nothing to do with the change. Each of the
    ``layouts`` processes starts with a different number of types and different holes in
    the heap, and the figure is the median over all of them.
    """
    import random

    rng = random.Random(index)
    _KEEP.extend(type(f"_Layout{index}_{i}", (), {}) for i in range(rng.randrange(0, 400)))
    blobs = [bytearray(rng.randrange(1, 2048)) for _ in range(rng.randrange(100, 2000))]
    _KEEP.extend(blobs[:: rng.randrange(2, 5)])  # the others leave holes


def child(
    kind: str, dbs: Sequence[str], db_path: str, sizes: Sizes, layout: int, meta_out: Path
) -> None:
    """Runs under valgrind: set up, warm up, then one dump per (case, number of calls)."""
    _shift_layout(layout)
    import maxminddb
    from workload import policy

    if not _valgrind.on_valgrind():
        raise SystemExit("this mode runs under valgrind: use `python bench/callgrind.py`")
    reader = maxminddb.open_database(db_path, maxminddb.MODE_MMAP_EXT)
    clients = Clients(reader)
    cases: list[Case] = []
    loops: list[asyncio.AbstractEventLoop] = []
    for db in dbs:
        config = policy(db_path if db == "mmdb" else None)
        if kind == "decide":
            made = _decide_cases(db, config, reader, clients, sizes)
        else:
            made, loop = _adapter_cases(kind, db, config, clients, _blocked(reader))
            loops += [loop] if loop is not None else []
        cases += [Case(f"{db}:{case.label}", case.prepare) for case in made]
    size = dict.fromkeys(("loop", "decide/repeated"), sizes.decide_repeated)
    default = sizes.decide_new if kind == "decide" else sizes.requests

    # Each case is measured on its own: warmed up twice (every lazy path and cache warm,
    # the interpreter's specialisations settled), then its rounds one after another, each
    # the loop over nothing and the loop over n inputs. Interleaving the cases instead made
    # a figure depend on what ran just before it (heap layout, caches). All inputs are made
    # first; the garbage collector is off in the measured loops, as in timeit: when it runs
    # depends on what came before, and one collection more or less in a loop would move a
    # figure by more than the differences looked for.
    counts = {case.label: size.get(case.label.split(":")[1], default) for case in cases}
    plans: list[tuple[str | None, Measured]] = []
    for case in cases:
        n = counts[case.label]
        # The interpreter's specialisations take a few hundred calls of decide() to settle.
        warm = min(n, 300) if ":decide/" in case.label else sizes.warmup
        plans.append((None, case.prepare(warm, "warm-up 1")))
        plans.append((None, case.prepare(warm, "warm-up 2")))
        for index in range(sizes.rounds):
            key = f"round {index}"
            plans.append((f"{case.label}|{index}|0", case.prepare(0, key)))
            plans.append((f"{case.label}|{index}|{n}", case.prepare(n, key)))
    _valgrind.run_plans(plans)
    for loop in loops:
        loop.close()
    meta_out.write_text(json.dumps({"counts": counts, "rounds": sizes.rounds}))


# -- the parent: run the processes, read the dumps, one table -----------------------------------


def _run_one(
    kind: str, dbs: tuple[str, ...], layout: int, db_path: Path, sizes: Sizes, work: Path
) -> dict[str, dict[str, list[float]]]:
    """{db: {label: instructions per call in each round}} for one process."""
    folder = work / f"{kind}-{'-'.join(dbs)}-{layout}"
    folder.mkdir()
    out_file = folder / "callgrind.out"
    meta = folder / "meta.json"
    argv = [
        *_valgrind.command(out_file),
        f"--log-file={folder / 'valgrind.log'}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        ",".join(dbs),
        "--db",
        str(db_path),
        "--sizes",
        json.dumps(sizes.__dict__),
        "--layout",
        str(layout),
        "--meta",
        str(meta),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not meta.exists():
        log = (folder / "valgrind.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"{kind} {dbs} layout {layout} failed (exit {done.returncode}):\n"
            f"{done.stderr[-5000:]}\n{log}"
        )
    written = json.loads(meta.read_text())
    dumps = _valgrind.read_dumps(out_file)
    per_call: dict[str, dict[str, list[float]]] = {db: {} for db in dbs}
    for label, n in written["counts"].items():
        db, name = label.split(":")
        per_call[db][name] = [
            (dumps[f"{label}|{index}|{n}"] - dumps[f"{label}|{index}|0"]) / n
            for index in range(written["rounds"])
        ]
    return per_call


Rounds = dict[str, dict[str, list[list[float]]]]  # {db: {label: [[per round] per layout]}}


def measure(
    db_path: Path, sizes: Sizes, kinds: Sequence[str], jobs: int, progress: Callable[[str], None]
) -> Rounds:
    """Every round of every process."""
    results: Rounds = {db: {} for db in DATABASES}
    with tempfile.TemporaryDirectory(prefix="geofence-callgrind-") as tmp:
        work = Path(tmp)

        def one(
            job: tuple[str, tuple[str, ...], int],
        ) -> tuple[dict[str, dict[str, list[float]]], float]:
            started = time.perf_counter()
            found = _run_one(*job, db_path, sizes, work)
            return found, time.perf_counter() - started

        # Starting a process under valgrind costs more than most measurements in it, so both
        # databases share one, except for Django, whose settings are per process.
        groups = {kind: [DATABASES] for kind in KINDS}
        groups["Django"] = [(db,) for db in DATABASES]
        # The slowest first, so that the processes finish together.
        order = sorted(kinds, key=("Django", "Flask", "Starlette", "decide").index)
        runs = [
            (kind, dbs, layout)
            for kind in order
            for dbs in groups[kind]
            for layout in range(sizes.layouts)
        ]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (kind, dbs, layout), (found, took) in zip(runs, pool.map(one, runs), strict=True):
                progress(f"  {kind}, {' and '.join(dbs)}, layout {layout + 1}: {took:.0f} s")
                for db, labels in found.items():
                    for label, values in labels.items():
                        results[db].setdefault(label, []).append(values)
    return results


def medians(results: Rounds) -> dict[str, dict[str, float]]:
    """The figure: the median over every round of every layout."""
    return {
        db: {
            label: statistics.median(v for layout in layouts for v in layout)
            for label, layouts in found.items()
        }
        for db, found in results.items()
    }


def spreads(results: Rounds) -> dict[str, float]:
    """How far apart, in % of the figure, an adapter request's rounds in one process are at
    most, and the medians of the processes, for repeated inputs and for new clients (other
    addresses in every round)."""
    worst = dict.fromkeys(("rounds", "layouts", "new rounds", "new layouts"), 0.0)
    for found in results.values():
        for label, layouts in found.items():
            if label.split("/")[0] not in KINDS[1:]:
                continue
            new = label.endswith("/new")
            middle = statistics.median(v for layout in layouts for v in layout)
            for what, values in (
                ("rounds", [_range(r) for r in layouts]),
                ("layouts", [_range([statistics.median(r) for r in layouts])]),
            ):
                key = f"new {what}" if new else what
                worst[key] = max(worst[key], max(values) / middle * 100)
    return worst


def added_spread(rounds: Rounds) -> float:
    """The largest difference between processes in instructions added per request by
    geofence for a repeated input (repeated or proxied client)."""
    worst = 0.0
    for found in rounds.values():
        for label, layouts in found.items():
            kind, variant, client = [*label.split("/"), "", ""][:3]
            if variant == "geofence" and client != "new":
                bare = found[f"{kind}/bare/{client}"]
                worst = max(worst, _range(_paired(bare, layouts)))
    return worst


def _range(values: list[float]) -> float:
    return max(values) - min(values)


def _n(value: float) -> str:
    return f"{value:,.0f}"


Row = dict[str, Any]  # label, cells {db: text}, numbers {db: {...}}


def _row(label: str, cells: dict[str, str], numbers: dict[str, Any] | None = None) -> Row:
    return {"label": label, "cells": cells, "numbers": numbers or {}}


def rows(rounds: Rounds, kinds: Sequence[str]) -> list[Row]:
    """The table: one row per figure, a cell per database."""
    results = medians(rounds)
    table: list[Row] = []
    if "decide" in kinds:
        table += _decide_rows(results)
    adapters = [kind for kind in KINDS[1:] if kind in kinds]
    table += _adapter_rows(rounds, adapters)
    if "Starlette" in adapters:
        table.append(
            _added(
                rounds,
                "peer: Starlette BaseHTTPMiddleware pass-through, repeated client",
                "Starlette/bare/repeated",
                "Starlette/passthrough/repeated",
            )
        )
    for kind in adapters:
        cells = {db: _n(results[db][f"{kind}/bare/new"]) for db in DATABASES}
        table.append(_row(f"{kind} bare app, one request", cells))
    if "decide" in kinds:
        cells = {db: _n(results[db]["loop"]) for db in DATABASES}
        table.append(_row("loop overhead, subtracted from decide() and raw lookups", cells))
    return table


def _decide_rows(results: dict[str, dict[str, float]]) -> list[Row]:
    table: list[Row] = []
    raw_name = {"mmdb": "maxminddb C get()", "embedded": "iptocc"}
    for what, title in (
        ("new-v4", "new IPv4 client"),
        ("new-v6", "new IPv6 client"),
        ("repeated", "repeated client"),
    ):
        cells: dict[str, str] = {}
        raw_cells: dict[str, str] = {}
        numbers: dict[str, Any] = {}
        for db in DATABASES:
            loop = results[db]["loop"]
            decide = results[db][f"decide/{what}"] - loop
            raw = results[db][f"raw/{what}"] - loop
            cells[db] = f"{_n(decide)} = {decide / raw:.2f}x raw"
            raw_cells[db] = f"{_n(raw)} ({raw_name[db]})"
            numbers[db] = {"decide": round(decide), "raw": round(raw), "ratio": decide / raw}
        table.append(_row(f"decide(), {title}", cells, numbers))
        table.append(_row(f"raw lookup, {title}", raw_cells))
    return table


def _adapter_rows(rounds: Rounds, kinds: Sequence[str]) -> list[Row]:
    return [
        _added(
            rounds,
            f"{kind}, {CLIENT_TITLES[client]}",
            f"{kind}/bare/{client}",
            f"{kind}/geofence/{client}",
        )
        for kind in kinds
        for client in CLIENTS
    ]


def _added(rounds: Rounds, label: str, bare_key: str, key: str) -> Row:
    """Instructions added per request, and in % of the bare app's request.

    A process's layout moves the bare app and the app with geofence alike (both run in it),
    so the difference is taken in each process and the median of those is reported."""
    cells: dict[str, str] = {}
    numbers: dict[str, Any] = {}
    for db in DATABASES:
        if key not in rounds[db]:
            continue
        added_each = _paired(rounds[db][bare_key], rounds[db][key])
        added = statistics.median(added_each)
        bare = statistics.median(v for layout in rounds[db][bare_key] for v in layout)
        fenced = bare + added
        pct = added / bare * 100
        cells[db] = f"{added:+,.0f} ({pct:+.2f} %)"
        numbers[db] = {"bare": round(bare), "with": round(fenced), "added": round(added)}
        numbers[db]["pct"] = round(pct, 3)
        numbers[db]["added_per_layout"] = [round(a) for a in added_each]
    return _row(label, cells, numbers)


def _paired(bare: list[list[float]], fenced: list[list[float]]) -> list[float]:
    """Per process: the median round with geofence minus the median round without."""
    return [statistics.median(f) - statistics.median(b) for b, f in zip(bare, fenced, strict=True)]


def markdown(table: list[dict[str, Any]]) -> str:
    lines = [
        "| instructions per decision / request | "
        + " | ".join(DB_TITLES[db] for db in DATABASES)
        + " |",
        "|---|" + "---:|" * len(DATABASES),
    ]
    for row in table:
        lines.append(
            f"| {row['label']} | "
            + " | ".join(row["cells"].get(db, "-") for db in DATABASES)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", type=Path, help="a GeoIP2/GeoLite2 Country .mmdb instead of the generated one"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes at once"
    )
    parser.add_argument(
        "--only", action="append", choices=KINDS, help="measure only this (repeatable)"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(
            args.child[0],
            args.child[1].split(","),
            str(args.db),
            Sizes(**json.loads(args.sizes)),
            args.layout,
            args.meta,
        )
        return 0

    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.db is not None:
        db_path = args.db.resolve()
    else:
        import realdb

        db_path, took = realdb.ensure()
        print(
            f"Database: {db_path.name} ({'cached' if took is None else f'built in {took:.0f} s'})"
        )
    sizes = Sizes()
    commit = _provenance.commit()
    versions = _provenance.versions(PACKAGES)
    print(f"geofence {commit}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"valgrind callgrind, {args.jobs} processes at once ...", flush=True)
    results = measure(
        db_path, sizes, args.only or KINDS, args.jobs, lambda text: print(text, flush=True)
    )
    kinds = args.only or KINDS
    per_call = medians(results)
    table = rows(results, kinds)
    print()
    print(markdown(table))
    seconds = time.perf_counter() - started
    worst = spreads(results)
    print(
        f"\nEach figure is the median of {sizes.rounds} rounds in each of {sizes.layouts} "
        f"processes laid out differently. Adapter requests: rounds in one process differ by at "
        f"most {worst['rounds']:.2f} % (new clients: {worst['new rounds']:.2f} %, other "
        f"addresses each round), processes by at most {worst['layouts']:.2f} % "
        f"({worst['new layouts']:.2f} %); the instructions geofence adds for a repeated "
        f"input, taken in each process, by at most {added_spread(results):,.0f}. "
        f"Run took {seconds:.0f} s."
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "versions": versions,
                    "database": db_path.name,
                    "sizes": sizes.__dict__,
                    "seconds": round(seconds, 1),
                    "per_call": per_call,
                    "spreads_pct": worst,
                    "rounds": results,
                    "rows": table,
                },
                indent=1,
            )
        )
        print(f"saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
