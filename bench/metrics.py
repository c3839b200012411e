"""What [metrics] costs a repeated allowed request, in instructions (issue 12's number).

    python bench/metrics.py                   # about 4 minutes on 2 cores
    python bench/metrics.py --json OUT.json
    python bench/metrics.py --only shapes     # the hot path's shapes alone (30 s)

Target: with metrics on, a repeated allowed request costs at most 3 % more instructions than
with metrics off. Measured with callgrind as ``callgrind.py`` measures (only the measured
loop, in processes laid out differently; ``_valgrind.py``), on the embedded database with the
example policy (``workload.py``), for the repeated client (answered from the decision cache):

- ``Engine.decide()`` alone, metrics off and on;
- one request through each adapter (Django, Flask, Starlette, in-process in front of the same
  bare app as ``callgrind.py``, ``apps.py``), with geofence's metrics off and on.

Both engines of a comparison live in the same process, so that they share its memory layout;
the figure added is taken in each process, then the median over processes. "On" is
``[metrics] prometheus = true`` with the collector registered (what a scrape reads): the
request path is the same for ``opentelemetry = true``, one counter call per cached decision.

``shapes`` measures the engine's hot path around a cache entry's ``attention`` on its own
(``_engine.py``: ``if attention: if attention is True: ... else: attention()``) with each
kind of counter, and the same with ``next(attention)``: what a change of the hot path would
save, before making it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

KINDS = ("decide", "Django", "Flask", "Starlette", "shapes")
VARIANTS = ("off", "on")
TARGET_PCT = 3.0
PACKAGES = ("geofence-middleware", "prometheus-client", "Django", "Flask", "starlette")


@dataclass(frozen=True)
class Sizes:
    decide: int = 2000  # decide() calls per loop
    requests: int = 40  # adapter requests per loop
    warmup: int = 300  # calls in each of the two warm-up loops
    rounds: int = 3  # measurements of each case per process
    layouts: int = 3  # processes per kind, each laid out differently


def config(metrics: bool) -> dict[str, Any]:
    from workload import policy

    chosen = policy(None)
    if metrics:
        chosen["metrics"] = {"prometheus": True}
    return chosen


# -- the measured process ------------------------------------------------------------------------


def _check_counts(engine: Any, call: Callable[[], object], metrics: bool) -> None:
    """The engine with metrics on counts each repeated request; the other counts nothing."""
    from geofence.metrics import TALLY

    before = sum(TALLY.snapshot().values())
    call()
    grown = sum(TALLY.snapshot().values()) - before
    if grown != (1 if metrics else 0):
        raise RuntimeError(
            f"metrics {'on' if metrics else 'off'}: counted {grown}, not per request"
        )


# -- hot-path shapes: what counting a cached decision could cost, each on its own ---------------


def _branch(attention: Any) -> None:
    """The engine's hot path around a cache entry's ``attention`` (``_engine.py``)."""
    if attention:
        if attention is True:
            pass
        else:
            attention()


def _branch_next(attention: Any) -> None:
    """The same with the entry holding an iterator, counted by the builtin ``next``."""
    if attention:
        if attention is True:
            pass
        else:
            next(attention)


def _branch_only(attention: Any) -> None:
    if attention:  # noqa: SIM102 - the engine's two tests, without the call
        if attention is True:
            pass


SHAPES: dict[str, tuple[Callable[[Any], None], Callable[[], Any]]] = {
    "off: attention False": (_branch, lambda: False),
    "truthy attention, no count": (_branch_only, lambda: [0]),
    "attention() = count.__next__": (_branch, lambda: itertools.count(1000).__next__),
    "attention() = repeat.__next__ (now)": (
        _branch,
        lambda: itertools.repeat(None, sys.maxsize).__next__,
    ),
    "next(attention), a repeat": (_branch_next, lambda: itertools.repeat(None, sys.maxsize)),
}


def _shape_cases() -> dict[str, Callable[[int], Any]]:
    cases: dict[str, Callable[[int], Any]] = {}
    for label, (shape, make) in SHAPES.items():
        attention = make()
        cases[f"shapes/{label}"] = lambda n, f=shape, a=attention: _valgrind.loop(f, [a] * n)
    return cases


def _cases(kind: str, sizes: Sizes) -> tuple[dict[str, Callable[[int], Any]], Any]:
    """label -> (n -> the measured loop over n requests), and the event loop (Starlette)."""
    import apps
    from callgrind import _asgi, _wsgi
    from inprocess import _asgi_status, _wsgi_status
    from workload import HEADERS, HOST, PATH, REPEATED

    import geofence

    loop: asyncio.AbstractEventLoop | None = None
    cases: dict[str, Callable[[int], Any]] = {
        "loop": lambda n: _valgrind.loop(callable, [None] * n)
    }
    if kind == "shapes":
        return {**cases, **_shape_cases()}, None
    if kind == "decide":
        info = geofence.RequestInfo(
            peer=REPEATED, headers=HEADERS, method="GET", path=PATH, host=HOST
        )
        for variant in VARIANTS:
            engine = geofence.Engine.from_config(config(variant == "on"))
            decision = engine.decide(info)
            if (decision.action, decision.country) != ("allow", "US"):
                raise RuntimeError(f"unexpected decision {decision!r}")
            _check_counts(engine, lambda e=engine: e.decide(info), variant == "on")
            cases[f"decide/{variant}"] = lambda n, e=engine: _valgrind.loop(e.decide, [info] * n)
        return cases, None

    apps_by_variant: dict[str, Any] = {}
    if kind == "Django":
        for variant in VARIANTS:
            bare, fenced = apps.django_handlers(config(variant == "on"))
            apps_by_variant[variant] = fenced
        apps_by_variant["bare"] = bare
    elif kind == "Flask":
        apps_by_variant = {v: apps.flask_app(config(v == "on")).wsgi_app for v in VARIANTS}
        apps_by_variant["bare"] = apps.flask_app(None).wsgi_app
    else:
        loop = asyncio.new_event_loop()
        apps_by_variant = {v: apps.starlette_app(config(v == "on")) for v in VARIANTS}
        apps_by_variant["bare"] = apps.starlette_app(None)

    client = (REPEATED, None)

    def status(app: Any) -> int:
        return _wsgi_status(app, client) if loop is None else _asgi_status(app, client, loop)

    from geofence.metrics import TALLY

    for variant, app in apps_by_variant.items():
        before = sum(TALLY.snapshot().values())
        if status(app) != 200:
            raise RuntimeError(f"{kind} {variant}: not answered 200")
        grown = sum(TALLY.snapshot().values()) - before
        if grown != (1 if variant == "on" else 0):
            raise RuntimeError(f"{kind} {variant}: counted {grown} decisions for one request")

    for variant, app in apps_by_variant.items():

        def prepare(n: int, app: Any = app) -> Any:
            clients = [client] * n
            return _wsgi(app, clients) if loop is None else _asgi(app, clients, loop)

        cases[f"{kind}/{variant}"] = prepare
    return cases, loop


def child(kind: str, layout: int, sizes: Sizes, meta_out: Path) -> None:
    """Runs under valgrind: set up, check, then one dump per (case, round, size)."""
    from callgrind import _shift_layout

    _shift_layout(layout)
    if not _valgrind.on_valgrind():
        raise SystemExit("this mode runs under valgrind: use `python bench/metrics.py`")
    cases, loop = _cases(kind, sizes)
    n = sizes.decide if kind in ("decide", "shapes") else sizes.requests
    plans: list[tuple[str | None, _valgrind.Measured]] = []
    for label, prepare in cases.items():
        warm = sizes.warmup if kind in ("decide", "shapes") else min(sizes.warmup, 30)
        plans.append((None, prepare(warm)))
        plans.append((None, prepare(warm)))
        for index in range(sizes.rounds):
            plans.append((f"{label}|{index}|0", prepare(0)))
            plans.append((f"{label}|{index}|{n}", prepare(n)))
    _valgrind.run_plans(plans)
    if loop is not None:
        loop.close()
    meta_out.write_text(json.dumps({"labels": list(cases), "n": n, "rounds": sizes.rounds}))


# -- the parent ------------------------------------------------------------------------------------


def _run_one(kind: str, layout: int, sizes: Sizes, work: Path) -> dict[str, list[float]]:
    """label -> instructions per call in each round, for one process."""
    folder = work / f"{kind}-{layout}"
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
        "--layout",
        str(layout),
        "--sizes",
        json.dumps(sizes.__dict__),
        "--meta",
        str(meta),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # per-process counts, as most deployments
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not meta.exists():
        log = (folder / "valgrind.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"{kind} layout {layout} failed (exit {done.returncode}):\n{done.stderr[-5000:]}\n{log}"
        )
    written = json.loads(meta.read_text())
    dumps = _valgrind.read_dumps(out_file)
    n = written["n"]
    return {
        label: [
            (dumps[f"{label}|{i}|{n}"] - dumps[f"{label}|{i}|0"]) / n
            for i in range(written["rounds"])
        ]
        for label in written["labels"]
    }


def measure(
    sizes: Sizes, kinds: Sequence[str], jobs: int, progress: Callable[[str], None]
) -> dict[str, list[dict[str, list[float]]]]:
    """kind -> one {label: per-round figures} per process."""
    found: dict[str, list[dict[str, list[float]]]] = {kind: [] for kind in kinds}
    runs = [(kind, layout) for kind in kinds for layout in range(sizes.layouts)]
    with tempfile.TemporaryDirectory(prefix="geofence-metrics-callgrind-") as tmp:

        def one(run: tuple[str, int]) -> tuple[dict[str, list[float]], float]:
            started = time.perf_counter()
            result = _run_one(*run, sizes, Path(tmp))
            return result, time.perf_counter() - started

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (kind, layout), (result, took) in zip(runs, pool.map(one, runs), strict=True):
                progress(f"  {kind}, layout {layout + 1}: {took:.0f} s")
                found[kind].append(result)
    return found


def figures(found: dict[str, list[dict[str, list[float]]]]) -> list[dict[str, Any]]:
    """One row per kind: instructions with metrics off and on (minus the empty loop), the
    instructions added (taken in each process, then the median) and that as % of off."""
    rows = []
    for kind, layouts in found.items():
        if kind == "shapes":
            continue

        def median(label: str, layouts: list[dict[str, list[float]]] = layouts) -> float:
            return float(statistics.median(v for per in layouts for v in per[label]))

        loop = median("loop")
        off = median(f"{kind}/off") - loop
        on = median(f"{kind}/on") - loop
        added = statistics.median(
            statistics.median(per[f"{kind}/on"]) - statistics.median(per[f"{kind}/off"])
            for per in layouts
        )
        spread = max(
            statistics.median(per[f"{kind}/on"]) - statistics.median(per[f"{kind}/off"])
            for per in layouts
        ) - min(
            statistics.median(per[f"{kind}/on"]) - statistics.median(per[f"{kind}/off"])
            for per in layouts
        )
        row: dict[str, Any] = {
            "kind": kind,
            "off": round(off),
            "on": round(on),
            "added": round(added),
            "pct": round(added / off * 100, 2),
            "added_spread": round(spread),
        }
        if kind != "decide":
            bare = median(f"{kind}/bare") - loop
            row["bare"] = round(bare)
            row["geofence_share_off"] = round((off - bare) / bare * 100, 2)
        rows.append(row)
    return rows


def shape_figures(layouts: list[dict[str, list[float]]]) -> dict[str, float]:
    """Instructions each hot-path shape adds to the shape with metrics off."""

    def median(label: str) -> float:
        return float(statistics.median(v for per in layouts for v in per[label]))

    off = median("shapes/off: attention False")
    return {label: round(median(f"shapes/{label}") - off, 1) for label in SHAPES}


TITLES = {
    "decide": "`Engine.decide()`, repeated client",
    "Django": "Django request, repeated client",
    "Flask": "Flask request, repeated client",
    "Starlette": "Starlette request, repeated client",
}


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| repeated allowed request | metrics off | metrics on | added | added % "
        f"(target <= {TARGET_PCT:g} %) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        verdict = "ok" if row["pct"] <= TARGET_PCT else "OVER"
        lines.append(
            f"| {TITLES[row['kind']]} | {row['off']:,} | {row['on']:,} | {row['added']:,} "
            f"| {row['pct']:.2f} % {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes at once"
    )
    parser.add_argument("--only", action="append", choices=KINDS, help="measure only this")
    parser.add_argument("--layouts", type=int, help="processes per kind (default 3)")
    parser.add_argument("--child", metavar="KIND", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.layout, Sizes(**json.loads(args.sizes)), args.meta)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    sizes = Sizes() if args.layouts is None else Sizes(layouts=args.layouts)
    commit = _provenance.commit()
    versions = _provenance.versions(PACKAGES)
    print(f"geofence {commit}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"valgrind callgrind, {args.jobs} processes at once ...", flush=True)
    kinds = args.only or list(KINDS)
    found = measure(sizes, kinds, args.jobs, lambda text: print(text, flush=True))
    rows = figures(found)
    if rows:
        print()
        print(markdown(rows))
    shapes = shape_figures(found["shapes"]) if "shapes" in found else {}
    if shapes:
        print("\nThe hot path's shapes alone (instructions added to `attention` False):\n")
        print("| shape | added |\n|---|---:|")
        for label, added in shapes.items():
            print(f"| {label} | {added:,.0f} |")
    worst = max((row["added_spread"] for row in rows), default=0)
    print(
        f"\nInstructions per call, minus the empty loop; each the median of {sizes.rounds} rounds "
        f"in each of {sizes.layouts} processes laid out differently. 'added' is taken in each "
        f"process (off and on share its layout), then the median; between processes it differs "
        f"by at most {worst:,} instructions. Run took {time.perf_counter() - started:.0f} s."
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "versions": versions,
                    "sizes": sizes.__dict__,
                    "rows": rows,
                    "rounds": found,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
