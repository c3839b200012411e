"""``geofence replay --html`` opened in headless Chromium (tests/helpers/browser.py).

The page is the example log of the README (examples/replay: July 9 against today's policy, with its
accounts) plus a second log whose client asked for a hostile path (``<script>``, quotes, a
right-to-left override, 300 characters without a space). Chromium loads the file with
nothing else reachable: it must say nothing on its console (a Content-Security-Policy
violation would be there), the document it built must hold the JSON's figures, and on a 390
px phone, light and dark, nothing may stick out on the right while the tables' bar column is
still in view. Screenshots go to the artifacts folder.
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
from browser import artifact, ink, load, require_chromium, screenshot

from geofence import cli

# Chromium is a slow real component: tox runs these in one env of the matrix only.
pytestmark = [pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "replay"
PHONE = 390
PADDING = 16  # the page's body padding, in CSS pixels (one device pixel each here)
LONG = "a" * 300
SCROLL = ".scroll{overflow-x:auto;max-width:100%}"
HOSTILE_TARGET = f"/v1/%3Cscript%3Ealert(%22x%22)%3C/script%3E%27%E2%80%AEgpj.exe/{LONG}"


class Figures(HTMLParser):
    """The elements of a document with ``data-figure``: (JSON path, data-value, text)."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[list[Any], Any, str]] = []
        self.tags: set[str] = set()
        self._open: list[tuple[str, list[Any], Any, list[str]]] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        attributes = dict(attrs)
        if "data-figure" in attributes:
            path = json.loads(attributes["data-figure"] or "null")
            value = json.loads(attributes["data-value"] or "null")
            self._open.append((tag, path, value, []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, path, value, parts = self._open.pop()
            self.found.append((path, value, "".join(parts)))

    def handle_data(self, data: str) -> None:
        for _, _, _, parts in self._open:
            parts.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The HTML page and the JSON document of one ``geofence replay`` run."""
    require_chromium()
    folder = tmp_path_factory.mktemp("replay-html")
    hostile = folder / "hostile.log"
    hostile.write_text(
        f'175.16.199.1 - - [03/Nov/2026:09:00:00 +0000] "GET {HOSTILE_TARGET} HTTP/1.1" 200 1'
        ' "-" "-" "-"\n'
    )
    page, document = folder / "report.html", folder / "report.json"
    status = cli.main(
        [
            "replay",
            str(EXAMPLES / "access.log"),
            str(hostile),
            "--config",
            str(EXAMPLES / "policy-july9-accounts.toml"),
            "--baseline",
            str(EXAMPLES / "policy-current.toml"),
            "--at",
            "2027-07-10T00:00:00Z",
            "--html",
            str(page),
            "--json",
            str(document),
            "--accounts",
            str(folder / "accounts.csv"),
        ]
    )
    assert status == 0
    return page, json.loads(document.read_text())


def at_path(document: Any, path: list[Any]) -> Any:
    for step in path:
        document = document[step]
    return document


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_loads_quietly_with_the_json_figures(
    report: tuple[Path, dict[str, Any]], scheme: str
) -> None:
    page, document = report
    loaded = load(page, PHONE, 800, color_scheme=scheme)
    assert loaded.console == ()
    figures = Figures(loaded.dom)
    assert "script" not in figures.tags
    assert len(figures.found) > 40
    for path, value, shown in figures.found:
        assert at_path(document, path) == value, path
        if isinstance(value, int):
            assert shown.replace(",", "") == str(value), path
    paths = [path for path, _, _ in figures.found]
    assert ["newly_blocked", "count"] in paths and ["policy", "actions", "block"] in paths
    assert ["accounts", "seen"] in paths and ["accounts", "affected", "grace"] in paths
    assert document["newly_blocked"]["count"] == 58  # the README's 57, and the hostile line
    hostile = [p["path"] for p in document["policy"]["paths"] if p["path"].endswith(LONG)]
    assert hostile and hostile[0].startswith('/v1/<script>alert("x")</script>')
    assert "alert(&quot;x&quot;)" in loaded.dom or 'alert("x")' in loaded.dom
    assert "\u202e" not in loaded.dom


def test_a_csp_violation_would_show(report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    # The check above can fail: the same page with one inline style attribute (which the
    # page's policy refuses) gets a console message.
    page, _ = report
    spoiled = tmp_path / "spoiled.html"
    spoiled.write_text(
        page.read_text(encoding="utf-8").replace("<main>", '<main style="color:red">', 1),
        encoding="utf-8",
    )
    console = load(spoiled, PHONE, 800).console
    assert any("Content Security Policy" in message for message in console), console


def without_scrolling(page: Path, target: Path) -> Path:
    """The page with its tables' safety net taken away (a wrapper that scrolls a table too
    wide for the screen), the style's hash in its CSP updated: every table must then fit."""
    document = page.read_text(encoding="utf-8")
    style = re.search(r"<style>(.*?)</style>", document, re.S)
    assert style is not None and SCROLL in style.group(1)
    bare = style.group(1).replace(SCROLL, ".scroll{}")
    hashes = [
        "sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        for css in (style.group(1), bare)
    ]
    assert hashes[0] in document
    target.write_text(
        document.replace(style.group(1), bare).replace(hashes[0], hashes[1]), encoding="utf-8"
    )
    return target


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_no_horizontal_overflow(
    report: tuple[Path, dict[str, Any]], scheme: str, tmp_path: Path
) -> None:
    from PIL import Image

    page, _ = report
    shot = screenshot(
        page, artifact(f"replay-report-{PHONE}-{scheme}.png"), PHONE, 3600, color_scheme=scheme
    )
    bare = without_scrolling(page, tmp_path / "bare.html")
    assert load(bare, PHONE, 800).console == ()  # the page's policy still allows its style
    bare_shot = screenshot(bare, tmp_path / "bare.png", PHONE, 3600, color_scheme=scheme)
    with Image.open(shot) as image:
        assert image.size == (PHONE, 3600)
        background = image.convert("RGB").getpixel((2, 2))
    assert isinstance(background, tuple)
    dark = sum(background[:3]) < 3 * 96
    assert dark == (scheme == "dark"), background
    for picture in (ink(shot), ink(bare_shot)):
        assert picture.share > 0.02  # a page was drawn
        # Nothing in the right padding: no line, table or path runs past the content box
        # (the content itself does reach its right edge: the actions bars, the numbers).
        assert sum(picture.columns[PHONE - PADDING + 2 :]) == 0
        assert sum(picture.columns[PHONE - PADDING - 4 : PHONE - PADDING]) > 100


def test_laptop_screenshot(report: tuple[Path, dict[str, Any]]) -> None:
    page, _ = report
    shot = screenshot(page, artifact("replay-report-1024.png"), 1024, 1800)
    picture = ink(shot)
    assert picture.box is not None
    left, _, right, _ = picture.box
    # The content is centred in its 960 px column.
    assert left >= PADDING and right <= 1024 - PADDING
