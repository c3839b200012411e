"""geofence benchmark suite: one command, one table of medians and ratios.

    python bench/run.py            # full run, about 5-10 minutes on 2 cores
    python bench/run.py --quick    # about a minute: fewer rounds, shorter load runs

See bench/README.md for what each figure means. Results also go to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
# Run from a clean clone without installing the adapters' source folder: the installed
# packages still come first when present.
sys.path.extend([str(PROJECT), str(PROJECT / "adapters")])

import decisions  # noqa: E402
import inprocess  # noqa: E402
import machine  # noqa: E402
import maxminddb  # noqa: E402
import memory  # noqa: E402
import realdb  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import timing  # noqa: E402
from workload import Addresses  # noqa: E402

SECTIONS = ("decision", "clientip", "adapters", "servers", "memory")


@dataclass(frozen=True)
class Plan:
    decision: decisions.Sizes
    adapters: inprocess.Sizes
    servers: servers.Sizes
    memory_clients: int


FULL = Plan(
    decisions.Sizes(new_count=2000, repeat_count=20_000, rounds=15),
    inprocess.Sizes(count=300, rounds=31),
    servers.Sizes(seconds=4, pairs=5),
    memory_clients=1_000_000,
)
QUICK = Plan(
    decisions.Sizes(new_count=1000, repeat_count=10_000, rounds=5),
    inprocess.Sizes(count=150, rounds=9),
    servers.Sizes(seconds=1.5, pairs=3),
    memory_clients=200_000,
)


def _blocked(reader: Any, addresses: Addresses) -> str:
    """An address the example policy blocks on this database (a CN client)."""
    for _ in range(100):
        for ip in addresses.v4(200, lambda ip: isinstance(reader.get(ip), dict)):
            if (reader.get(ip).get("country") or {}).get("iso_code") == "CN":
                return ip
    raise RuntimeError("no CN address found in the database: cannot check that geofence blocks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute instead of 5-10")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--db",
        type=Path,
        help="a GeoIP2/GeoLite2 Country or City .mmdb to use instead of the generated one",
    )
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "latest.json", help="where to save"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    wanted = set(args.only or SECTIONS)
    started = time.perf_counter()

    info = machine.info()
    print("geofence benchmark", "(quick)" if args.quick else "(full)")
    print(machine.describe(info))

    if args.db is not None:
        db_path, db_label = args.db.resolve(), f"{args.db.name}"
    else:
        db_path, took = realdb.ensure()
        db_label = "real-size GeoIP2-Country"
        info["database_build_seconds"] = took
        state = "cached" if took is None else f"built in {took:.0f} s"
        print(f"Database: {db_path.relative_to(PROJECT)} ({state})")
    reader = maxminddb.open_database(str(db_path), maxminddb.MODE_MMAP_EXT)
    meta = reader.metadata()
    print(
        f"  {meta.database_type}, {meta.node_count:,} search-tree nodes, "
        f"{db_path.stat().st_size / 1e6:.1f} MB"
    )
    info["database"] = {"type": meta.database_type, "nodes": meta.node_count}

    overhead = timing.loop_overhead()
    print(f"Loop overhead subtracted from single-call figures: {overhead:.0f} ns per call")
    print()

    addresses = Addresses()
    rows: list[report.Row] = []

    def step(name: str, what: str) -> bool:
        if name not in wanted:
            return False
        print(f"... {what}", flush=True)
        return True

    if step("decision", "decision cost"):
        rows += decisions.decision_rows(str(db_path), db_label, addresses, plan.decision, overhead)
    if step("clientip", "client-IP resolution"):
        rows += decisions.resolver_rows(addresses, plan.decision, overhead)
    blocked = _blocked(reader, addresses) if wanted & {"adapters", "servers"} else ""
    if step("adapters", "adapters in-process"):
        rows += inprocess.adapter_rows(str(db_path), addresses, reader, blocked, plan.adapters)
    if step("servers", f"real servers ({servers.load_tool()})"):
        rows += servers.server_rows(str(db_path), blocked, plan.servers)
    if step("memory", f"memory ({plan.memory_clients:,} clients twice)"):
        rows += memory.memory_rows(str(db_path), addresses, plan.memory_clients)

    info["load_average_end"] = machine.load_average()
    info["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(report.table(rows))
    print()
    print(report.summary(rows))
    print(
        f"Load average at end: {info['load_average_end']}; "
        f"run took {info['seconds']:.0f} s; saved to {args.json}"
    )
    report.save(args.json, info, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
