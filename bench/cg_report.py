"""callgrind.py's tables: medians of the rounds, instructions added, the issue's targets.

Three tables, one column per build of each tree measured (``current compiled``, ``current
pure``, ``<ref> pure``, ...): the real-size GeoIP2-Country file, with the targets of issue 15
and whether each column meets them; the embedded default, with the RSS an engine adds; the
peers on the real-size file next to geofence in the same case.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rss import MB, TARGET_MB

CLIENTS = ("repeated", "new", "proxied")
CLIENT_TITLES = {
    "repeated": "repeated client",
    "new": "new client (each in a new network)",
    "proxied": "repeated client via trusted proxy (X-Forwarded-For)",
}
ADAPTERS = ("Django", "Flask", "Starlette")
PEERS = "peers"
WORKLOAD_TITLES = {
    "new-v4": "new IPv4 client (each in a new network)",
    "new-v6": "new IPv6 client (each in a new network)",
    "allowed-v4": "new IPv4 client, allowed (a network no rule's country)",
    "allowed-v6": "new IPv6 client, allowed (a network no rule's country)",
    "blocked-v4": "new IPv4 client, blocked (a network of a country blocked now)",
    "blocked-v6": "new IPv6 client, blocked (a network of a country blocked now)",
    "clustered-v4": "new IPv4 client, clustered networks",
    "uniform-v4": "new IPv4 client, uniform random address",
    "repeated": "repeated client",
}
RAW_NAMES = {"mmdb": "maxminddb C get()", "embedded": "iptocc.country_code()"}

# Issue 15, "Numbers to reach" (instructions): % of the bare app added per request.
ADAPTER_TARGETS = {
    ("Django", "repeated"): 1.3,
    ("Flask", "repeated"): 1.3,
    ("Starlette", "repeated"): 6.5,
    ("Django", "new"): 4.5,
    ("Flask", "new"): 4.5,
    ("Starlette", "new"): 25.0,
}
DECIDE_NEW_RATIO = 0.5  # decide() for a new client, as a multiple of one raw C get()
DECIDE_REPEATED = 1500  # instructions
V6_OVER_V4 = 1.0  # a new IPv6 client no slower than a new IPv4 one

# (peer kind, label of the peer's variant, client, title, geofence's case to compare with)
PEER_ROWS = (
    ("peer-Django", "extras", "repeated", "django-geoip2-extras, repeated client", "Django"),
    ("peer-Django", "extras", "new", "django-geoip2-extras, new client", "Django"),
    ("peer-Starlette", "guard", "repeated", "fastapi-guard (country check), repeated", "Starlette"),
    ("peer-Starlette", "guard", "new", "fastapi-guard (country check), new client", "Starlette"),
    (
        "peer-Starlette",
        "passthrough",
        "repeated",
        "Starlette BaseHTTPMiddleware pass-through, repeated",
        "Starlette",
    ),
)

Layouts = list[list[float]]  # [[per round] per process]
Rounds = dict[str, dict[str, dict[str, Layouts]]]  # {column: {db: {label: layouts}}}


def median_all(layouts: Layouts) -> float:
    return statistics.median(v for layout in layouts for v in layout)


def paired(bare: Layouts, fenced: Layouts) -> list[float]:
    """Per process: the median round with the middleware minus the median round without."""
    return [statistics.median(f) - statistics.median(b) for b, f in zip(bare, fenced, strict=True)]


def _range(values: list[float]) -> float:
    return max(values) - min(values)


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _mark(met: bool | None) -> str:
    return "" if met is None else (" met" if met else " **not met**")


@dataclass
class Added:
    bare: float
    added: float
    per_layout: list[float]

    @property
    def pct(self) -> float:
        return self.added / self.bare * 100

    def text(self) -> str:
        return f"{self.added:+,.0f} ({self.pct:+.2f} %)"

    def numbers(self) -> dict[str, Any]:
        return {
            "bare": round(self.bare),
            "added": round(self.added),
            "pct": round(self.pct, 3),
            "added_per_layout": [round(a) for a in self.per_layout],
        }


def added(found: dict[str, Layouts], bare_key: str, key: str) -> Added | None:
    """Instructions added per request, and in % of the bare app's request.

    A process's layout moves the bare app and the app with the middleware alike (both run in
    it), so the difference is taken in each process and the median of those is reported."""
    if key not in found or bare_key not in found:
        return None
    each = paired(found[bare_key], found[key])
    return Added(median_all(found[bare_key]), statistics.median(each), each)


Row = dict[str, Any]  # title, cells {column: text}, numbers {column: {...}}, target, met


class Report:
    def __init__(
        self,
        columns: Sequence[str],
        rounds: Rounds,
        notes: dict[str, dict[str, Any]],
        memory: dict[str, list[int]],
        peer_status: dict[str, str | None],
    ) -> None:
        self.columns = list(columns)
        self.rounds = rounds
        self.notes = notes
        self.memory = memory
        self.peer_status = peer_status
        self.medians = {
            column: {
                db: {label: median_all(layouts) for label, layouts in found.items()}
                for db, found in by_db.items()
            }
            for column, by_db in rounds.items()
        }

    # -- rows ---------------------------------------------------------------------------

    def _per_column(
        self, title: str, target: str, cell: Callable[[str], tuple[str, Any, bool | None] | None]
    ) -> Row:
        row: Row = {"title": title, "target": target, "cells": {}, "numbers": {}, "met": {}}
        for column in self.columns:
            got = cell(column)
            if got is None:
                continue
            text, numbers, met = got
            row["cells"][column] = text + _mark(met)
            row["numbers"][column] = numbers
            if met is not None:
                row["met"][column] = met
        return row

    def _medians(self, column: str, db: str) -> dict[str, float] | None:
        return self.medians.get(column, {}).get(db)

    def decide_rows(self, db: str) -> list[Row]:
        rows: list[Row] = []
        for what, name in WORKLOAD_TITLES.items():
            title = name + (self._clustered_note() if what == "clustered-v4" else "")
            target = ""
            if db == "mmdb" and what in ("new-v4", "new-v6"):
                target = f"<= {DECIDE_NEW_RATIO}x raw get()"
            elif db == "mmdb" and what == "repeated":
                target = f"<= {DECIDE_REPEATED:,}"

            def cell(column: str, what: str = what) -> tuple[str, Any, bool | None] | None:
                found = self._medians(column, db)
                if found is None or f"decide/{what}" not in found:
                    return None
                loop = found["loop"]
                decide = found[f"decide/{what}"] - loop
                raw = found[f"raw/{what}"] - loop
                met: bool | None = None
                if db == "mmdb" and what in ("new-v4", "new-v6"):
                    met = decide / raw <= DECIDE_NEW_RATIO
                elif db == "mmdb" and what == "repeated":
                    met = decide <= DECIDE_REPEATED
                numbers = {"decide": round(decide), "raw": round(raw), "ratio": decide / raw}
                return f"{_n(decide)} = {decide / raw:.2f}x raw", numbers, met

            rows.append(self._per_column(f"decide(), {title}", target, cell))
            if what == "new-v6":
                rows.append(self._v6_row(db, "new", "new-v4", "new-v6"))
            elif what in ("allowed-v6", "blocked-v6"):
                kind = what[: -len("-v6")]
                rows.append(self._v6_row(db, kind, f"{kind}-v4", what))
        for what, title in WORKLOAD_TITLES.items():

            def raw_cell(column: str, what: str = what) -> tuple[str, Any, bool | None] | None:
                found = self._medians(column, db)
                if found is None or f"raw/{what}" not in found:
                    return None
                raw = found[f"raw/{what}"] - found["loop"]
                return _n(raw), {"raw": round(raw)}, None

            rows.append(self._per_column(f"{RAW_NAMES[db]}, {title}", "", raw_cell))
        return rows

    def _v6_row(self, db: str, what: str, four: str, six: str) -> Row:
        """IPv6 over IPv4 for a pair of workloads: ``new`` (each family's own mix of decisions),
        ``allowed`` and ``blocked`` (the same decision for both, so the ratio is the
        addresses' own cost)."""

        def cell(column: str) -> tuple[str, Any, bool | None] | None:
            found = self._medians(column, db)
            if found is None or f"decide/{six}" not in found or f"decide/{four}" not in found:
                return None
            v4 = found[f"decide/{four}"] - found["loop"]
            v6 = found[f"decide/{six}"] - found["loop"]
            met = v6 / v4 <= V6_OVER_V4 if db == "mmdb" else None
            return f"{v6 / v4:.2f}x", {"ratio": v6 / v4}, met

        target = f"<= {V6_OVER_V4:.2f}x" if db == "mmdb" else ""
        title = f"decide(), {what} IPv6 client / {what} IPv4 client"
        return self._per_column(title, target, cell)

    def _clustered_note(self) -> str:
        for column in self.columns:
            counts = self.notes.get(column, {}).get("clustered_networks")
            if counts:
                n, networks = max(counts.items(), key=lambda item: int(item[0]))
                return f" ({int(n):,} clients in {networks} networks)"
        return ""

    def adapter_rows(self, db: str) -> list[Row]:
        rows: list[Row] = []
        for kind in ADAPTERS:
            for client in CLIENTS if db == "mmdb" else ("new",):
                limit = ADAPTER_TARGETS.get((kind, client)) if db == "mmdb" else None

                def cell(
                    column: str, kind: str = kind, client: str = client, limit: float | None = limit
                ) -> tuple[str, Any, bool | None] | None:
                    found = self.rounds.get(column, {}).get(db, {})
                    got = added(found, f"{kind}/bare/{client}", f"{kind}/geofence/{client}")
                    if got is None:
                        return None
                    met = None if limit is None else got.pct <= limit
                    return got.text(), got.numbers(), met

                target = "" if limit is None else f"<= +{limit:g} %"
                rows.append(self._per_column(f"{kind}, {CLIENT_TITLES[client]}", target, cell))
        for kind in ADAPTERS:

            def bare(column: str, kind: str = kind) -> tuple[str, Any, bool | None] | None:
                found = self._medians(column, db)
                if found is None or f"{kind}/bare/new" not in found:
                    return None
                value = found[f"{kind}/bare/new"]
                return _n(value), {"bare": round(value)}, None

            rows.append(self._per_column(f"{kind} bare app, one request", "", bare))
        return rows

    def loop_row(self, db: str) -> Row:
        def cell(column: str) -> tuple[str, Any, bool | None] | None:
            found = self._medians(column, db)
            if found is None or "loop" not in found:
                return None
            return _n(found["loop"]), {"loop": round(found["loop"])}, None

        return self._per_column("loop overhead, subtracted from decide() and raw lookups", "", cell)

    def rss_row(self) -> Row:
        def cell(column: str) -> tuple[str, Any, bool | None] | None:
            values = self.memory.get(column)
            if not values:
                return None
            mb = statistics.median(values) / MB
            return f"{mb:.1f} MB", {"median_mb": round(mb, 2), "bytes": values}, mb <= TARGET_MB

        return self._per_column(
            "RSS added: import geofence + Engine.from_config({}) + one decide()",
            f"<= {TARGET_MB:g} MB",
            cell,
        )

    def peer_rows(self) -> list[Row]:
        found = self.rounds.get(PEERS, {}).get("mmdb", {})
        rows: list[Row] = []
        for kind, variant, client, title, ours in PEER_ROWS:
            why = self.peer_status.get(kind, "not measured: --only left it out")
            got = added(found, f"{kind}/bare/{client}", f"{kind}/{variant}/{client}")
            if why is None and got is None:
                why = "not measured"
            row: Row = {
                "title": f"{ours}: {title}",
                "peer": why if why is not None else got.text() if got else "",
                "peer_numbers": got.numbers() if got is not None and why is None else None,
                "cells": {},
                "numbers": {},
            }
            for column in self.columns:
                mine = added(
                    self.rounds.get(column, {}).get("mmdb", {}),
                    f"{ours}/bare/{client}",
                    f"{ours}/geofence/{client}",
                )
                if mine is not None:
                    row["cells"][column] = mine.text()
                    row["numbers"][column] = mine.numbers()
            rows.append(row)
        return rows

    # -- output ---------------------------------------------------------------------------

    def tables(self) -> dict[str, list[Row]]:
        mmdb = self.decide_rows("mmdb") + self.adapter_rows("mmdb") + [self.loop_row("mmdb")]
        embedded = (
            self.decide_rows("embedded")
            + self.adapter_rows("embedded")
            + [self.loop_row("embedded"), self.rss_row()]
        )
        keep = [row for row in mmdb if row["cells"]]
        return {
            "real-size GeoIP2-Country file": keep,
            "embedded default": [row for row in embedded if row["cells"]],
            "peers": self.peer_rows() if self.peer_status else [],
        }

    def markdown(self) -> str:
        out: list[str] = []
        for name, rows in self.tables().items():
            if not rows:
                continue
            if name == "peers":
                out.append(self._peer_markdown(rows))
                continue
            out += [
                f"### Instructions per decision / request: {name}",
                "",
                "| | " + " | ".join(self.columns) + " | target |",
                "|---|" + "---:|" * len(self.columns) + "---|",
            ]
            for row in rows:
                cells = [row["cells"].get(column, "-") for column in self.columns]
                out.append(f"| {row['title']} | " + " | ".join(cells) + f" | {row['target']} |")
            out.append("")
        return "\n".join(out).rstrip()

    def _peer_markdown(self, rows: list[Row]) -> str:
        out = [
            "### Peers on the real-size file: instructions added per request (% of the bare app)",
            "",
            "| | peer | " + " | ".join(f"geofence, {c}" for c in self.columns) + " |",
            "|---|---:|" + "---:|" * len(self.columns),
        ]
        for row in rows:
            cells = [row["cells"].get(column, "-") for column in self.columns]
            out.append(f"| {row['title']} | {row['peer']} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def spreads(self) -> dict[str, float]:
        """How far apart, in % of the figure, an adapter request's rounds in one process are
        at most, and the medians of the processes, for repeated inputs and for new clients;
        and the largest difference between processes in instructions added for a repeated
        input."""
        worst = dict.fromkeys(("rounds", "layouts", "new rounds", "new layouts"), 0.0)
        added_worst = 0.0
        for by_db in self.rounds.values():
            for found in by_db.values():
                for label, layouts in found.items():
                    parts = label.split("/")
                    if len(parts) != 3:
                        continue
                    kind, variant, client = parts
                    new = client == "new"
                    middle = median_all(layouts)
                    for what, values in (
                        ("rounds", [_range(r) for r in layouts]),
                        ("layouts", [_range([statistics.median(r) for r in layouts])]),
                    ):
                        key = f"new {what}" if new else what
                        worst[key] = max(worst[key], max(values) / middle * 100)
                    bare = found.get(f"{kind}/bare/{client}")
                    if variant != "bare" and not new and bare is not None:
                        added_worst = max(added_worst, _range(paired(bare, layouts)))
        return {**worst, "added_repeated_instructions": added_worst}

    def footer(
        self, rounds: int, layouts: int, rss_processes: int, seconds: float, roots: dict[str, str]
    ) -> str:
        worst = self.spreads()
        text = (
            f"Each figure is the median of {rounds} rounds in each of {layouts} processes laid "
            "out differently."
        )
        if any("/bare/" in label for c in self.rounds.values() for f in c.values() for label in f):
            text += (
                f" Adapter requests: rounds in one process differ by at most "
                f"{worst['rounds']:.2f} % (new clients: {worst['new rounds']:.2f} %, other "
                f"addresses each round), processes by at most {worst['layouts']:.2f} % "
                f"({worst['new layouts']:.2f} %); the instructions a middleware adds for a "
                f"repeated input, taken in each process, by at most "
                f"{worst['added_repeated_instructions']:,.0f}."
            )
        if self.memory:
            text += f" RSS: median of {rss_processes} fresh processes (1 MB = 2**20 bytes)."
        lines = [text + f" Run took {seconds:.0f} s."]
        for column in self.columns:
            where = self.notes.get(column, {}).get("geofence")
            if where:
                lines.append(f"- {column}: geofence imported from {where} (tree {roots[column]})")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "tables": self.tables(),
            "per_call": self.medians,
            "spreads": self.spreads(),
            "rss_bytes": self.memory,
            "notes": self.notes,
            "rounds": self.rounds,
        }
