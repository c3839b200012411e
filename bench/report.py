"""Result rows, the printed table and the JSON record of a run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from timing import Stats


@dataclass
class Row:
    section: str
    label: str
    value: str  # the headline figure, formatted ("0.42 us", "+2.1 %", "9,812 req/s")
    detail: str = ""  # spread and what it is compared with
    target: str = ""  # e.g. "<= 1.3x"
    met: bool | None = None  # None: no target
    numbers: dict[str, float] = field(default_factory=dict)  # raw figures for the JSON record


def us(stats: Stats) -> str:
    return f"{stats.median / 1000:.2f} us"


def spread(stats: Stats) -> str:
    return f"p10-p90 {stats.p10 / 1000:.2f}-{stats.p90 / 1000:.2f} us"


def stats_numbers(prefix: str, stats: Stats) -> dict[str, float]:
    return {
        f"{prefix}_median_ns": round(stats.median, 1),
        f"{prefix}_p10_ns": round(stats.p10, 1),
        f"{prefix}_p90_ns": round(stats.p90, 1),
    }


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def table(rows: list[Row]) -> str:
    """Rows grouped by section, columns aligned; plain text that also reads as Markdown."""
    header = ("measurement", "median", "detail", "target", "")
    cells = [(r.label, r.value, r.detail, r.target, verdict(r.met)) for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    section = None
    for row, cell in zip(rows, cells, strict=True):
        if row.section != section:
            section = row.section
            out.append(line((f"**{section}**", "", "", "", "")))
        out.append(line(cell))
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    judged = [r for r in rows if r.met is not None]
    missed = [r for r in judged if not r.met]
    lines = [f"Targets met: {len(judged) - len(missed)} of {len(judged)}"]
    lines += [f"  missed: {r.label} ({r.value}; target {r.target})" for r in missed]
    return "\n".join(lines)


def save(path: Path, machine: dict[str, Any], rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(record, indent=2) + "\n")
