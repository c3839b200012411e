"""The report as text (what ``geofence replay`` prints)."""

from __future__ import annotations

from geofence.replay._report import KINDS, Report, Totals

_WORDS = {
    "allow": "allowed",
    "warn": "warned",
    "block": "blocked",
    "would_warn": "would warn (report mode)",
    "would_block": "would block (report mode)",
}


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "-"


def _table(title: str, rows: list[tuple[str, dict[str, int]]], kinds: list[str]) -> list[str]:
    if not rows:
        return []
    width = max(len(title), *(len(name) for name, _ in rows))
    lines = [f"{title:<{width}}  " + "  ".join(f"{k:>11}" for k in kinds)]
    for name, counts in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts.get(k, 0):>11}" for k in kinds))
    return lines


def _kinds(totals: Totals, label: str, records: int) -> list[str]:
    lines = [f"{label}:"]
    for kind in KINDS:
        if totals.kinds.get(kind):
            count = totals.kinds[kind]
            lines.append(f"  {_WORDS[kind]:<26} {count:>10}  {_share(count, records):>7}")
    return lines


def _totals(totals: Totals, label: str, top: int, records: int) -> list[str]:
    document = totals.document(top)
    used = [k for k in KINDS if totals.kinds.get(k)] or ["allow"]
    lines = _kinds(totals, label, records)
    lines.append("")
    lines += _table("rule", list(document["rules"].items()), used)
    lines.append("")
    countries = list(document["countries"].items())
    lines += _table("country", countries[:top], used)
    if len(countries) > top:
        lines.append(f"  ... {len(countries) - top} more countries (--json has them all)")
    paths = [(p.pop("path"), p) for p in document["paths"]]
    if paths:
        lines.append("")
        shown = [k for k in used if k != "allow"]  # these paths are those not allowed
        lines += _table(f"path (not allowed, top {top})", paths, shown)
    return lines


def render(report: Report, top: int = 10) -> str:
    lines: list[str] = []
    for f in report.files:
        lines.append(f"{f.path}: {f.format}, {f.records} lines decided, {f.unparsable} unparsable")
    span = ""
    if report.first is not None and report.last is not None:
        span = f", {report.first.isoformat()} to {report.last.isoformat()}"
    lines.append(
        f"{report.records} lines{span}; {report.decisions} distinct decisions"
        + (f"; every line decided at {report.at.isoformat()}" if report.at else "")
    )
    if report.unparsable:
        lines.append(f"unparsable lines: {report.unparsable} (first {len(report.shown)} below)")
        for shown in report.shown:
            lines.append(f"  {shown.file}:{shown.line}: {shown.why}: {shown.text}")
    for note in report.remarks():
        lines.append(f"note: {note}")
    lines.append("")
    lines += _totals(report.policy, "policy", top, report.records)
    if report.baseline is not None:
        lines.append("")
        # The baseline's own tables are in --json; here its totals and what changes.
        lines += _kinds(report.baseline, "baseline", report.records)
        lines.append("")
        lines.append("transitions (baseline -> policy):")
        for (before, after), count in sorted(
            report.transitions.items(), key=lambda item: (-item[1], item[0])
        ):
            marker = "  newly blocked" if after == "block" != before else ""
            lines.append(
                f"  {before:>11} -> {after:<11} {count:>10}  "
                f"{_share(count, report.records):>7}{marker}"
            )
    lines.append("")
    newly = report.newly_blocked
    against = (
        "(not blocked by the baseline)"
        if report.baseline is not None
        else "(no baseline: every block)"
    )
    lines.append(
        f"newly blocked {against}: {newly} lines, {_share(newly, report.records)}"
        + (
            " ("
            + ", ".join(f"{c} {n}" for c, n in report.newly_blocked_countries.most_common(top))
            + ")"
            if newly
            else ""
        )
    )
    return "\n".join(lines)
