"""``geofence replay --html``: one self-contained, inert page whose figures are the JSON's.

The page is parsed back (html.parser): every element with ``data-figure`` names a JSON path,
and its value and its text must be the JSON report's at that path. A log written by a hostile
client (a path with ``<script>``, quotes and a right-to-left override) must come out as text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests_support import CITY_DB

from geofence import cli
from geofence.replay import Report, replay
from geofence.replay._html import csp, render_html, text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "replay"
AT = "2027-07-10T00:00:00Z"

# A request a client chose: percent-encoded in the log, decoded by the reader into
# /<script>alert("x")</script>'<RLO>gpj.exe  (U+202E would show "exe.jpg").
HOSTILE_TARGET = "/%3Cscript%3Ealert(%22x%22)%3C/script%3E%27%E2%80%AEgpj.exe"
HOSTILE_PATH = '/<script>alert("x")</script>\'\u202egpj.exe'


class Page(HTMLParser):
    """What a reader of the page gets: its tags and attributes, its text, its figures."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self.figures: list[tuple[list[Any], Any, str]] = []  # (path, data-value, text)
        self._open: list[tuple[str, list[Any], Any, list[str]]] = []
        self._in_style = False
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        self._in_style = tag == "style"
        hook = attributes.get("data-figure")
        if hook is not None:
            value = json.loads(attributes["data-value"] or "null")
            self._open.append((tag, json.loads(hook), value, []))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False
        if self._open and self._open[-1][0] == tag:
            _, path, value, parts = self._open.pop()
            self.figures.append((path, value, "".join(parts)))

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
            return
        self.text.append(data)
        for _, _, _, parts in self._open:
            parts.append(data)


def at_path(document: Any, path: list[Any]) -> Any:
    for step in path:
        document = document[step]
    return document


def example_report() -> Any:
    return replay(
        [EXAMPLES / "access.log"],
        policy=EXAMPLES / "policy-july9.toml",
        baseline=EXAMPLES / "policy-current.toml",
        at=_at(),
    )


def _at() -> Any:
    from datetime import datetime

    return datetime.fromisoformat(AT.replace("Z", "+00:00"))


def test_figures_equal_the_json() -> None:
    report = example_report()
    document = report.to_dict()
    page = Page(render_html(report))
    assert len(page.figures) > 40
    for path, value, shown in page.figures:
        assert at_path(document, path) == value, path
        if isinstance(value, int):
            assert shown.replace(",", "") == str(value), path
    found = {json.dumps(path) for path, _, _ in page.figures}
    # The headline and every row of every table are there, found by their JSON path.
    expected: list[list[str | int]] = [
        ["records"],
        ["decisions"],
        ["unparsable", "count"],
        ["policy", "actions", "block"],
        ["policy", "actions", "warn"],
        ["baseline", "actions", "block"],
        ["newly_blocked", "count"],
        ["newly_blocked", "share"],
        ["from"],
        ["to"],
        ["at"],
    ]
    expected += [["policy", "rules", rule, "block"] for rule in document["policy"]["rules"]]
    expected += [["policy", "countries", c, "allow"] for c in document["policy"]["countries"]]
    expected += [["policy", "paths", i, "block"] for i in range(len(document["policy"]["paths"]))]
    expected += [["transitions", i, "count"] for i in range(len(document["transitions"]))]
    expected += [["newly_blocked", "countries", c] for c in document["newly_blocked"]["countries"]]
    missing = [path for path in expected if json.dumps(path) not in found]
    assert missing == []
    # The numbers the README quotes, as the page shows them.
    assert document["newly_blocked"] == {
        "count": 57,
        "share": 0.1425,
        "countries": {"CN": 36, "RU": 21},
    }
    assert "14.2 %" in "".join(page.text)


def test_self_contained_and_inert() -> None:
    document = render_html(example_report())
    page = Page(document)
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "<script" not in document.lower()
    assert not tags & {"img", "link", "iframe", "object", "embed", "form", "base", "a"}
    for tag, attributes in page.tags:
        # Nothing to load or follow, and no inline style attribute (the CSP refuses them).
        assert not {"src", "href", "style", "srcset", "action"} & attributes.keys(), tag
        assert not any(name.startswith("on") for name in attributes), tag
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\b)", document)
    assert "url(" not in page.style and "@import" not in page.style
    # The CSP comes first in <head>, allows nothing but this page's own <style> by its hash.
    metas = [a for t, a in page.tags if t == "meta"]
    assert metas[0] == {"charset": "utf-8"}
    assert metas[1]["http-equiv"] == "Content-Security-Policy"
    policy = metas[1]["content"] or ""
    assert policy == csp()
    assert policy.startswith("default-src 'none'; ")
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    # Readable on a phone and in dark mode.
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert "@media (prefers-color-scheme:dark)" in page.style
    # Charts are inline SVG.
    assert sum(1 for t, _ in page.tags if t == "svg") > 20


def hostile_log(tmp_path: Path) -> Path:
    log = tmp_path / "access\u202etxt.log"
    lines = [
        f'175.16.199.1 - - [09/Jul/2027:10:00:00 +0000] "GET {HOSTILE_TARGET} HTTP/1.1" 200 1'
        ' "-" "-"',
        '216.160.83.56 - - [09/Jul/2027:10:00:01 +0000] "GET /ok HTTP/1.1" 200 1 "-" "-"',
        '1.2.3.4 - - [09/Jul/2027:10:00:02 +0000] "<script>alert(1)</script>\u202e"',
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return log


def test_hostile_paths_are_text(tmp_path: Path) -> None:
    policy = {
        "geoip": {"country_db": CITY_DB},
        "rules": [{"name": "cn <b>", "action": "block", "regions": ["CN"]}],
    }
    report = replay([hostile_log(tmp_path)], policy=policy)
    document = report.to_dict()
    assert document["policy"]["paths"][0]["path"] == HOSTILE_PATH
    assert document["unparsable"]["count"] == 1
    page_text = render_html(report)
    page = Page(page_text)
    assert "<script" not in page_text.lower() and "<b>" not in page_text
    assert not {"script", "b"} & {tag for tag, _ in page.tags}
    # No bidi control reaches the page; each is shown as a visible mark instead.
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f]", page_text)
    text = "".join(page.text)
    assert '/<script>alert("x")</script>\'\\u202egpj.exe' in text
    assert "<script>alert(1)</script>\\u202e" in text
    assert "access\\u202etxt.log" in text
    assert "cn <b>" in text
    # The hostile values are still figures' keys, exactly as in the JSON.
    for path, value, _ in page.figures:
        assert at_path(document, path) == value
    assert ["policy", "paths", 0, "block"] in [path for path, _, _ in page.figures]


def test_without_baseline_no_transitions() -> None:
    report = replay([EXAMPLES / "access.log"], policy=EXAMPLES / "policy-july9.toml")
    page = Page(render_html(report))
    text = "".join(page.text)
    assert "Transitions" not in text
    assert "(no baseline)" in text
    assert not [p for p, _, _ in page.figures if p[0] in ("transitions", "baseline")]


def test_accounts_section_when_present() -> None:
    assert "Accounts" not in "".join(Page(render_html(example_report())).text)
    report = replay(
        [EXAMPLES / "access.log"],
        policy=EXAMPLES / "policy-july9-accounts.toml",
        baseline=EXAMPLES / "policy-current.toml",
        at=_at(),
        accounts=True,
    )
    document = report.to_dict()
    accounts = document["accounts"]
    page = Page(render_html(document))
    assert "Accounts" in "".join(page.text)
    paths = [p for p, _, _ in page.figures]
    assert ["accounts", "seen"] in paths
    assert [["accounts", "affected", state] for state in accounts["affected"]] == [
        p for p in paths if p[:2] == ["accounts", "affected"]
    ]
    assert sum(accounts["affected"].values()) > 0
    for path, value, _ in page.figures:
        assert at_path(document, path) == value


def test_accounts_of_another_shape() -> None:
    # The section shows whatever the accounts summary holds, escaped, numbers as figures.
    document = example_report().to_dict()
    document["accounts"] = {
        "count": 2,
        "by_state": {"warned": 1, "blocked": 1},
        "rows": [{"account": "<img src=x>", "requests": 3, "countries": ["CN", "RU"]}],
    }
    page = Page(render_html(document))
    text = "".join(page.text)
    assert "Accounts" in text and "<img src=x>" in text
    assert "img" not in {tag for tag, _ in page.tags}
    paths = [p for p, _, _ in page.figures]
    assert ["accounts", "by_state", "blocked"] in paths
    assert ["accounts", "rows", 0, "requests"] in paths
    for path, value, _ in page.figures:
        assert at_path(document, path) == value


def test_cli_html_equals_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, js = tmp_path / "report.html", tmp_path / "report.json"
    status = cli.main(
        [
            "replay",
            str(EXAMPLES / "access.log"),
            "--config",
            str(EXAMPLES / "policy-july9.toml"),
            "--baseline",
            str(EXAMPLES / "policy-current.toml"),
            "--at",
            AT,
            "--top",
            "3",
            "--html",
            str(out),
            "--json",
            str(js),
        ]
    )
    assert status == 0
    assert "newly blocked (not blocked by the baseline): 57 lines" in capsys.readouterr().out
    document = json.loads(js.read_text())
    page = Page(out.read_text(encoding="utf-8"))
    assert page.figures
    for path, value, _ in page.figures:
        assert at_path(document, path) == value
    assert len([p for p, _, _ in page.figures if p[:2] == ["policy", "paths"]]) == 3


def test_cli_html_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["replay", str(EXAMPLES / "access.log"), "--html", str(tmp_path / "no" / "r.html")]
    )
    assert status == 2
    assert "--html" in capsys.readouterr().err


@pytest.mark.parametrize(
    "character",
    [
        "\u202e",
        "\u202a",
        "\u2066",
        "\u2069",
        "\u200f",
        "\u061c",
        "\u200b",
        "\ufeff",
        "\x00",
        "\n",
        "\x1b",
        "\x85",
        "\u2028",
        "\xad",
    ],
)
def test_invisible_characters_are_shown(character: str) -> None:
    shown = text(f"a{character}b")
    assert character not in shown
    assert f"\\u{ord(character):04x}" in shown
    assert shown.startswith("<bdi>") and shown.endswith("</bdi>")


def test_empty_report() -> None:
    # A replay of nothing (every line unparsable, or no line): a page, no division by zero.
    page = Page(render_html(Report()))
    values = {json.dumps(path): value for path, value, _ in page.figures}
    assert values['["records"]'] == 0 and values['["newly_blocked", "share"]'] == 0.0
    assert "Every line was allowed." in "".join(page.text)


def test_top_limits_the_tables() -> None:
    document = example_report().to_dict(top=3)
    page = Page(render_html(document, top=3))
    countries = {p[2] for p, _, _ in page.figures if p[:2] == ["policy", "countries"]}
    assert countries == set(list(document["policy"]["countries"])[:3])
    more = len(document["policy"]["countries"]) - 3
    assert f"{more} more countries in the JSON report." in "".join(page.text)
