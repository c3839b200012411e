"""The report as one self-contained HTML page (what ``geofence replay --html OUT`` writes).

The page is rendered from :meth:`Report.to_dict` (what ``--json`` writes), so that every
figure on it is one of the JSON's: each such figure carries ``data-figure``, the JSON path of
its value as a JSON array (``["policy", "countries", "CN", "block"]``), and ``data-value``,
the value itself as JSON. A test (or a script) reads them back and compares.

Self-contained and inert: no script, and nothing from elsewhere (no font, style sheet or
image); the one ``<style>`` element is allowed by its hash in a Content-Security-Policy
``<meta>`` whose ``default-src`` is ``'none'``. Charts are inline SVG bars drawn with
presentation attributes and CSS classes (no ``style`` attributes, which that policy refuses).

Paths, hosts and unparsable lines come from logs, which anyone on the internet can write to:
every value is HTML-escaped, shown in ``<bdi>`` (a right-to-left override inside cannot
reorder the text around it), and control characters (bidi overrides and isolates, zero-width
characters, C0/C1 controls) are shown as visible ``\\u202e`` marks instead of acting.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from geofence.replay._report import KINDS, Report

JsonPath = tuple[str | int, ...]

WORDS = {
    "allow": "allowed",
    "warn": "warned",
    "block": "blocked",
    "would_warn": "would warn (report mode)",
    "would_block": "would block (report mode)",
}
SHORT = {
    "allow": "allow",
    "warn": "warn",
    "block": "block",
    "would_warn": "would warn",
    "would_block": "would block",
}

# Characters that change how text around them is shown, or hide themselves: C0 and C1
# controls (a line break in a path too: each value is one line), the soft hyphen, bidi marks,
# embeddings, overrides and isolates, zero-width characters, line and paragraph separators,
# the BOM and interlinear annotations.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)

_CSS = """\
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#5b6470;--bg:#fff;--card:#f4f6f8;\
--line:#d8dde3;--allow:#2e7d32;--warn:#b26a00;--block:#c62828;--would_warn:#d9a441;\
--would_block:#e57373;--track:#e6e9ed}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--muted:#a2abb6;--bg:#121417;\
--card:#1c2026;--line:#333a43;--allow:#66bb6a;--warn:#ffb74d;--block:#ef5350;\
--would_warn:#c9a24f;--would_block:#f48f8f;--track:#2a3038}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;padding:16px;background:var(--bg);color:var(--fg);\
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:960px;margin:0 auto}
h1{font-size:1.45em;margin:0 0 .2em}
h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
p,li{overflow-wrap:anywhere}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px;\
margin:1em 0}
.card.wide{grid-column:span 2}
.card{background:var(--card);border-radius:8px;padding:8px 10px;min-width:0}
.card .label{display:block;color:var(--muted);font-size:.85em}
.card .big{display:block;font-size:1.35em;font-weight:600;font-variant-numeric:tabular-nums}
.card .small{display:block;font-size:.85em;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 6px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85em}
td{white-space:nowrap}
th:first-child,td:first-child{white-space:normal;text-align:left;overflow-wrap:anywhere;word-break:break-word}
td.named{width:100%;min-width:7em}
td.named svg.bar{margin:3px 0 2px}
svg.bar{display:block;width:100%;height:10px}
svg.bar.big{height:22px}
.track{fill:var(--track)}
.k-allow{fill:var(--allow)}.k-warn{fill:var(--warn)}.k-block{fill:var(--block)}
.k-would_warn{fill:var(--would_warn)}.k-would_block{fill:var(--would_block)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:.4em 0 0;padding:0;list-style:none;\
font-size:.9em}
.legend svg{width:10px;height:10px;vertical-align:-1px;margin-right:4px}
.newly td{font-weight:600}
.newly td:first-child{color:var(--block)}
code,.line{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
.line{display:block;white-space:pre-wrap;overflow-wrap:anywhere;background:var(--card);\
padding:6px 8px;border-radius:6px;margin:.2em 0 .8em}
.esc{color:var(--block);font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
footer{margin-top:2em;font-size:.85em;color:var(--muted)}
"""


def csp() -> str:
    """The page's Content-Security-Policy: nothing but its own ``<style>`` element."""
    digest = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"


def text(value: object) -> str:
    """``value`` as HTML text: escaped, with invisible and reordering characters shown as
    ``\\uXXXX`` marks, in a ``<bdi>`` so that its direction cannot leak out."""
    escaped = html.escape(str(value), quote=True)
    shown = _INVISIBLE.sub(
        lambda match: f'<span class="esc">\\u{ord(match.group(0)):04x}</span>', escaped
    )
    return f"<bdi>{shown}</bdi>"


def _attribute(value: str) -> str:
    return html.escape(_INVISIBLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", value), quote=True)


def _number(value: int) -> str:
    return f"{value:,}"


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "-"


def figure(path: JsonPath, value: Any, shown: str | None = None, tag: str = "span") -> str:
    """An element holding one figure of the JSON report, findable by its path."""
    if shown is None:
        shown = _number(value) if isinstance(value, int) else text(value)
    hook = _attribute(json.dumps(list(path), ensure_ascii=False))
    raw = _attribute(json.dumps(value, ensure_ascii=False))
    return f'<{tag} data-figure="{hook}" data-value="{raw}">{shown}</{tag}>'


def _bar(counts: Mapping[str, int], scale: int, label: str, big: bool = False) -> str:
    """A stacked horizontal bar of ``counts`` by kind, ``scale`` lines being the full width.
    Drawn in a 0-100 box stretched to its cell, so that it follows the page's width."""
    parts = ['<rect class="track" x="0" y="0" width="100" height="10"/>']
    x = 0.0
    for kind in KINDS:
        n = counts.get(kind, 0)
        if not n or not scale:
            continue
        width = 100 * n / scale
        tip = html.escape(f"{SHORT[kind]}: {n:,} ({_share(n, scale)})", quote=True)
        parts.append(
            f'<rect class="k-{kind}" x="{x:.3f}" y="0" width="{width:.3f}" height="10">'
            f"<title>{tip}</title></rect>"
        )
        x += width
    classes = "bar big" if big else "bar"
    return (
        f'<svg class="{classes}" viewBox="0 0 100 10" preserveAspectRatio="none" '
        f'role="img" aria-label="{_attribute(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )


def _legend(kinds: Sequence[str]) -> str:
    items = "".join(
        f'<li><svg viewBox="0 0 10 10" aria-hidden="true"><rect class="k-{k}" width="10" '
        f'height="10"/></svg>{html.escape(WORDS[k])}</li>'
        for k in kinds
    )
    return f'<ul class="legend">{items}</ul>'


def _used(*tables: Mapping[str, int]) -> list[str]:
    used = [k for k in KINDS if any(t.get(k) for t in tables)]
    return used or ["allow"]


def _kinds_table(
    title: str,
    rows: Sequence[tuple[str, Mapping[str, int], JsonPath]],
    kinds: Sequence[str],
    note: str = "",
) -> str:
    """A table of rows by kind, with a bar per row scaled to the largest row."""
    if not rows:
        return ""
    scale = max(sum(counts.get(k, 0) for k in KINDS) for _, counts, _ in rows) or 1
    head = "".join(f"<th>{html.escape(SHORT[k])}</th>" for k in kinds)
    body = []
    for name, counts, path in rows:
        cells = "".join(figure((*path, k), counts.get(k, 0), tag="td") for k in kinds)
        body.append(f"<tr>{_named(text(name), _bar(counts, scale, name))}{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr><th>{html.escape(title)}</th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def _named(name: str, bar: str) -> str:
    """A row's first cell: its name with its bar under it (a column of its own would leave
    the name too little room on a phone)."""
    return f'<td class="named">{name}{bar}</td>'


def _when(value: str | None) -> str:
    return value.replace("T", " ").replace("+00:00", " UTC") if value else "-"


def _span(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    try:
        seconds = int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except ValueError:
        return ""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


def _card(label: str, big: str, small: str = "", wide: bool = False) -> str:
    extra = f'<span class="small">{small}</span>' if small else ""
    classes = "card wide" if wide else "card"
    return (
        f'<div class="{classes}"><span class="label">{html.escape(label)}</span>'
        f'<span class="big">{big}</span>{extra}</div>'
    )


def _headline(document: Mapping[str, Any]) -> str:
    records: int = document["records"]
    actions: Mapping[str, int] = document["policy"]["actions"]
    newly: Mapping[str, Any] = document["newly_blocked"]
    blocked = actions.get("block", 0)
    warned = actions.get("warn", 0)
    cards = [
        _card("Lines decided", figure(("records",), records)),
        _card("Distinct decisions", figure(("decisions",), document["decisions"])),
        _card("Unparsable lines", figure(("unparsable", "count"), document["unparsable"]["count"])),
        _card(
            "Blocked",
            figure(("policy", "actions", "block"), blocked),
            f'<span data-share="block">{_share(blocked, records)}</span> of the lines',
        ),
        _card(
            "Warned",
            figure(("policy", "actions", "warn"), warned),
            f'<span data-share="warn">{_share(warned, records)}</span> of the lines',
        ),
        _card(
            "Newly blocked",
            figure(("newly_blocked", "count"), newly["count"]),
            figure(("newly_blocked", "share"), newly["share"], f"{100 * newly['share']:.1f} %")
            + (" vs. the baseline" if document.get("baseline") is not None else " (no baseline)"),
        ),
    ]
    span = _span(document.get("from"), document.get("to"))
    cards.append(
        _card(
            "Time span",
            html.escape(span) if span else "-",
            figure(("from",), document.get("from"), text(_when(document.get("from"))))
            + " to "
            + figure(("to",), document.get("to"), text(_when(document.get("to")))),
            wide=True,
        )
    )
    return f'<div class="cards">{"".join(cards)}</div>'


def _actions(document: Mapping[str, Any]) -> str:
    records: int = document["records"]
    policy: Mapping[str, int] = document["policy"]["actions"]
    baseline = document.get("baseline")
    tables = [policy] + ([baseline["actions"]] if baseline is not None else [])
    kinds = _used(*tables)
    rows = [("policy", policy, ("policy", "actions"))]
    if baseline is not None:
        rows.append(("baseline", baseline["actions"], ("baseline", "actions")))
    head = "".join(f"<th>{html.escape(SHORT[k])}</th>" for k in kinds)
    body = []
    for name, counts, path in rows:
        cells = "".join(
            f'<td>{figure((*path, k), counts.get(k, 0))}<br><span class="muted">'
            f"{_share(counts.get(k, 0), records)}</span></td>"
            for k in kinds
        )
        body.append(f'<tr><td class="named">{html.escape(name)}</td>{cells}</tr>')
    charts = "".join(
        f'<p class="muted">{html.escape(name)}</p>'
        f"{_bar(counts, records, f'{name}: lines by action', big=True)}"
        for name, counts, _ in rows
    )
    return (
        "<h2>Actions</h2>"
        + charts
        + _legend(kinds)
        + f'<div class="scroll"><table><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _totals(document: Mapping[str, Any], top: int) -> str:
    policy: Mapping[str, Any] = document["policy"]
    kinds = _used(policy["actions"])
    parts = ["<h2>By rule</h2>"]
    parts.append(
        _kinds_table(
            "rule",
            [(name, c, ("policy", "rules", name)) for name, c in policy["rules"].items()],
            kinds,
        )
    )
    countries = list(policy["countries"].items())
    more = (
        f'<p class="muted">{len(countries) - top:,} more countries in the JSON report.</p>'
        if len(countries) > top
        else ""
    )
    parts.append(f"<h2>By country (top {top}, most blocked first)</h2>")
    parts.append(
        _kinds_table(
            "country",
            [(name, c, ("policy", "countries", name)) for name, c in countries[:top]],
            kinds,
            more,
        )
    )
    paths: list[Mapping[str, Any]] = policy["paths"]
    parts.append(f"<h2>By path (not allowed, top {top})</h2>")
    if paths:
        not_allowed = [k for k in kinds if k != "allow"] or ["block"]
        parts.append(
            _kinds_table(
                "path",
                [(p["path"], p, ("policy", "paths", i)) for i, p in enumerate(paths)],
                not_allowed,
            )
        )
    else:
        parts.append('<p class="muted">Every line was allowed.</p>')
    reasons: Mapping[str, int] = policy["reasons"]
    if reasons:
        rows = "".join(
            f"<tr><td>{text(reason)}</td>{figure(('policy', 'reasons', reason), n, tag='td')}"
            f"<td>{_share(n, document['records'])}</td></tr>"
            for reason, n in reasons.items()
        )
        parts.append(
            "<h2>By reason</h2>"
            '<div class="scroll"><table><thead><tr><th>reason</th><th>lines</th><th>share</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    return "".join(parts)


def _transitions(document: Mapping[str, Any]) -> str:
    if document.get("baseline") is None:
        return ""
    records: int = document["records"]
    rows = []
    for i, row in enumerate(document["transitions"]):
        is_newly = row["to"] == "block" != row["from"]
        counts = {row["to"]: row["count"]}
        label = f"{row['from']} to {row['to']}"
        rows.append(
            f"<tr{' class=newly' if is_newly else ''}>"
            + _named(
                f"{text(row['from'])} → {text(row['to'])}"
                + (" <span>newly blocked</span>" if is_newly else ""),
                _bar(counts, records, label),
            )
            + f"{figure(('transitions', i, 'count'), row['count'], tag='td')}"
            f"<td>{_share(row['count'], records)}</td></tr>"
        )
    newly: Mapping[str, Any] = document["newly_blocked"]
    countries = [
        (name, {"block": n}, ("newly_blocked", "countries", name))
        for name, n in newly["countries"].items()
    ]
    by_country = ""
    if countries:
        scale = max(n for n in newly["countries"].values()) or 1
        body = "".join(
            f"<tr>{_named(text(name), _bar(c, scale, name))}"
            f"{figure(path, c['block'], tag='td')}<td>{_share(c['block'], records)}</td></tr>"
            for name, c, path in countries
        )
        by_country = (
            "<h2>Newly blocked, by country</h2>"
            '<div class="scroll"><table><thead><tr><th>country</th><th>lines</th>'
            f"<th>share</th></tr></thead><tbody>{body}</tbody></table></div>"
        )
    share = figure(("newly_blocked", "share"), newly["share"], f"{100 * newly['share']:.1f} %")
    return (
        "<h2>Transitions (baseline → policy)</h2>"
        f"<p>{share}"
        " of the lines would be newly blocked: blocked by the policy and not by the baseline.</p>"
        '<div class="scroll"><table><thead><tr><th>before → after</th><th>lines</th>'
        f"<th>share</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table></div>{by_country}"
    )


def _unparsable(document: Mapping[str, Any]) -> str:
    unparsable: Mapping[str, Any] = document["unparsable"]
    if not unparsable["count"]:
        return ""
    shown = "".join(
        f"<li>{text(s['file'])}:{figure(('unparsable', 'first', i, 'line'), s['line'])}: "
        f"{text(s['why'])}<span class=line>{text(s['text'])}</span></li>"
        for i, s in enumerate(unparsable["first"])
    )
    return (
        "<h2>Unparsable lines</h2>"
        f"<p>{figure(('unparsable', 'count'), unparsable['count'])} lines could not be read"
        f" (counted, never fatal); the first {len(unparsable['first'])}:</p><ul>{shown}</ul>"
    )


def _generic(value: Any, path: JsonPath) -> str:
    """Any JSON value as HTML, its numbers as figures: for sections whose shape this module
    does not know in advance (the accounts summary)."""
    if isinstance(value, Mapping):
        if not value:
            return '<span class="muted">none</span>'
        rows = "".join(
            f"<tr><td>{text(key)}</td><td>{_generic(item, (*path, key))}</td></tr>"
            for key, item in value.items()
        )
        return f'<div class="scroll"><table><tbody>{rows}</tbody></table></div>'
    if isinstance(value, list):
        if not value:
            return '<span class="muted">none</span>'
        if all(isinstance(item, Mapping) for item in value):
            columns: list[str] = []
            for item in value:
                columns += [str(k) for k in item if str(k) not in columns]
            head = "".join(f"<th>{text(c)}</th>" for c in columns)
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td>{_generic(item[c], (*path, i, c)) if c in item else ''}</td>"
                    for c in columns
                )
                + "</tr>"
                for i, item in enumerate(value)
            )
            return (
                f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>"
            )
        return ", ".join(_generic(item, (*path, i)) for i, item in enumerate(value))
    if value is None:
        return '<span class="muted">-</span>'
    if isinstance(value, bool):
        return text("yes" if value else "no")
    if isinstance(value, (int, float)):
        return figure(path, value)
    return text(value)


# The colour of an account state in the accounts chart: as the action that put it there.
_ACCOUNT_KINDS = {"suspended": "block", "blocked": "block", "grace": "warn", "warned": "warn"}


def _accounts(document: Mapping[str, Any]) -> str:
    """The accounts summary (``--accounts``), when the report has one. Its counts by state
    get a table with bars; anything else it holds is shown as it is."""
    accounts = document.get("accounts")
    if accounts is None:
        return ""
    if not isinstance(accounts, Mapping):
        return "<h2>Accounts</h2>" + _generic(accounts, ("accounts",))
    parts = ["<h2>Accounts</h2>"]
    seen, affected = accounts.get("seen"), accounts.get("affected")
    rest = dict(accounts)
    if isinstance(seen, int) and isinstance(affected, Mapping):
        del rest["seen"], rest["affected"]
        told = sum(n for n in affected.values() if isinstance(n, int))
        parts.append(
            f"<p>{figure(('accounts', 'seen'), seen)} accounts in the log; {_number(told)} of "
            "them would be told (one row each in the <code>--accounts</code> CSV).</p>"
        )
        rows = []
        for state, n in affected.items():
            if not isinstance(n, int):
                continue
            counts = {_ACCOUNT_KINDS.get(state, "block"): n}
            rows.append(
                f"<tr>{_named(text(state), _bar(counts, seen, str(state)))}"
                f"{figure(('accounts', 'affected', state), n, tag='td')}"
                f"<td>{_share(n, seen)}</td></tr>"
            )
        parts.append(
            '<div class="scroll"><table><thead><tr><th>state</th><th>accounts</th>'
            f"<th>of those seen</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    if rest:
        parts.append(_generic(rest, ("accounts",)))
    return "".join(parts)


def _files(document: Mapping[str, Any]) -> str:
    items = "".join(
        f"<li>{text(f['path'])}: {text(f['format'])}, "
        f"{figure(('files', i, 'records'), f['records'])} lines decided, "
        f"{figure(('files', i, 'unparsable'), f['unparsable'])} unparsable</li>"
        for i, f in enumerate(document["files"])
    )
    at = document.get("at")
    when = (
        f"<p>Every line decided at {figure(('at',), at, text(_when(at)))}.</p>"
        if at
        else "<p>Each line decided at its own time.</p>"
    )
    notes = "".join(f"<li>{text(note)}</li>" for note in document.get("notes") or [])
    return f"<ul>{items}</ul>{when}" + (
        f'<p class="muted">Notes:</p><ul>{notes}</ul>' if notes else ""
    )


def render_html(report: Report | Mapping[str, Any], top: int = 10) -> str:
    """The report (or the dict ``report.to_dict(top)`` made of it) as one HTML page."""
    document = report.to_dict(top) if isinstance(report, Report) else report
    title = "geofence replay: who would the policy block?"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en" dir="ltr"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp())}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>"
        + _files(document)
        + _headline(document)
        + _actions(document)
        + _transitions(document)
        + _totals(document, top)
        + _accounts(document)
        + _unparsable(document)
        + "<footer>Made by <code>geofence replay --html</code>. The same figures are in "
        "<code>--json</code>; each carries its JSON path in <code>data-figure</code>.</footer>"
        "</main></body></html>\n"
    )
