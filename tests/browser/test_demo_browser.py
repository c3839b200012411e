"""``geofence demo``'s explorer in headless Chromium, served by a real uvicorn on loopback.

For a blocked, a warned and an allowed pick: what the page shows is what the engine decides
for the same request, the frame holds the exact denial body, the page breaks no rule of its
Content-Security-Policy (its own style and the framed page's both apply), and its screenshots
are neither blank nor wider than a phone.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from browser import Ink, artifact, ink, load, screenshot

from geofence import Engine, RequestInfo
from geofence._model import Decision
from geofence.cli import demo
from geofence.cli._example import example_policy

# Chromium is a slow real component: tox runs these in one env of the matrix only.
pytestmark = [pytest.mark.server, pytest.mark.slow]

BROWSER_ACCEPT = demo.CLIENTS["browser"][1]
API_ACCEPT = demo.CLIENTS["api"][1]
# (name, form fields, the address the pick decides for, its Accept)
PICKS = [
    (
        "blocked",
        {"country": "CN", "path": "/web/home", "client": "browser", "lang": "en"},
        "175.16.199.1",
        BROWSER_ACCEPT,
    ),
    (
        "warned",
        {"country": "BY", "path": "/v1/models", "client": "api", "lang": "en"},
        "178.120.0.1",
        API_ACCEPT,
    ),
    (
        "allowed",
        {"ip": "8.8.8.8", "path": "/v1/models", "client": "api", "lang": "en"},
        "8.8.8.8",
        API_ACCEPT,
    ),
]
PHONES = (390, 320)
REF = re.compile(r"[0-9A-Z]{5}-[0-9A-Z]{5}")  # decision.ref as the engine writes it


class Shown(HTMLParser):
    """What the explorer's result shows: the decision table, the status, the response
    headers, the framed page and the text of the whole document."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.decision: dict[str, str] = {}
        self.headers: list[tuple[str, str]] = []
        self.status = ""
        self.frames: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._table = ""
        self._field: str | None = None
        self._cells: list[str] = []
        self._in_status = False
        self._cell: list[str] | None = None
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = found.get("id") or ""
        elif tag == "tr":
            self._field, self._cells = found.get("data-field"), []
        elif tag in ("th", "td"):
            self._cell = []
        elif tag == "p" and found.get("id") == "status":
            self._in_status = True
        elif tag == "iframe":
            self.frames.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self._cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and len(self._cells) == 2:
            name, value = self._cells
            if self._table == "decision":
                self.decision[self._field or name] = value
            elif self._table == "headers":
                self.headers.append((name, value.removesuffix("(set by geofence)").strip()))
        elif tag == "p":
            self._in_status = False
        elif tag == "table":
            self._table = ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_status:
            self.status += data


def shown_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expected_fields(decision: Decision) -> dict[str, str]:
    fields = {k: shown_text(v) for k, v in demo.decision_fields(decision).items()}
    if getattr(decision, "ref", None) is not None:
        fields["ref"] = "?"  # one per request: present, compared by shape only
    return fields


def now_to_the_minute() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


def not_blank(picture: Ink) -> None:
    width, height = picture.size
    assert picture.box is not None, "blank screenshot"
    left, top, right, bottom = picture.box
    # A rendered page: text and boxes over a good part of the window, not one stray mark.
    assert 0.02 < picture.share < 0.6, picture.share
    assert right - left > width / 2 and bottom - top > height / 4, picture.box


@pytest.mark.parametrize(("name", "fields", "ip", "accept"), PICKS, ids=[p[0] for p in PICKS])
def test_the_explorer_shows_what_the_engine_decides(
    demo_url: str, name: str, fields: dict[str, str], ip: str, accept: str
) -> None:
    at = now_to_the_minute()
    query = urlencode({**fields, "at": at.strftime("%Y-%m-%dT%H:%M")})
    url = f"{demo_url}/?{query}"
    loaded = load(url, 1280, 900)

    engine = Engine.from_config(example_policy())
    request = RequestInfo(
        ip, [("accept", accept), ("accept-language", fields["lang"])], "GET", fields["path"]
    )
    answer = engine.answer(request, now=at)
    expected = expected_fields(answer.decision)
    page = Shown(loaded.dom)
    shown_ref = page.decision.get("ref", "")
    if "ref" in page.decision:
        assert REF.fullmatch(shown_ref), shown_ref
        page.decision["ref"] = "?"
    assert page.decision == expected
    assert (
        page.decision["action"] == {"blocked": "block", "warned": "warn", "allowed": "allow"}[name]
    )
    text = "".join(page.text)
    assert "unresolved_client" not in text
    assert "127.0.0.1" in text and "loopback" in text  # the viewer is told where they are
    # Every style applied, nothing loaded from elsewhere: no Content-Security-Policy report.
    assert not [m for m in loaded.console if "Content Security Policy" in m], loaded.console

    if name == "blocked":
        response = answer.response
        assert response is not None
        assert page.status.startswith(f"{response.status} ")
        assert page.headers == list(response.headers)
        (frame,) = page.frames
        assert "sandbox" in frame and frame["sandbox"] == ""
        # The denial body, byte for byte, but for the reference: one per request, the page
        # shows its own (the decision table's), the engine here made another.
        body = response.body.decode()
        ours = getattr(answer.decision, "ref", None)
        if ours is not None:
            assert ours in body
            body = body.replace(ours, shown_ref)
        assert frame["srcdoc"] == body
        # The preview URL answers exactly the denial response (with a reference of its own).
        preview = httpx.get(f"{demo_url}/preview?{query}", timeout=10)
        assert preview.status_code == response.status
        assert REF.sub("REF", preview.text) == REF.sub("REF", response.body.decode())
        for header, value in response.headers:
            assert preview.headers[header] == value
    elif name == "warned":
        assert answer.amends
        added = answer.headers(lambda header: None)  # the app sets none of the four
        shown = dict(page.headers)
        for header, value in added:
            assert shown[header] == value, header
        assert {"Sunset", "Deprecation", "Link", "Cache-Control"} <= set(shown)
        assert page.status.startswith("200 ")
        assert not page.frames
    else:
        assert answer.response is None and not answer.amends
        assert "Sunset" not in dict(page.headers)
        assert page.status.startswith("200 ")


@pytest.mark.parametrize(("name", "fields", "ip", "accept"), PICKS, ids=[p[0] for p in PICKS])
def test_the_explorer_screenshots(
    demo_url: str, name: str, fields: dict[str, str], ip: str, accept: str
) -> None:
    url = f"{demo_url}/?{urlencode(fields)}"
    wide = ink(screenshot(url, artifact(f"demo-{name}-1280.png"), 1280, 1400))
    not_blank(wide)
    # No horizontal overflow at phone widths (390: a common phone; 320: the narrowest still
    # in use): whatever is wider than the window runs into its edges, which the page's
    # padding otherwise leaves empty. (Measured: a grid column of min 20rem did, at 320.)
    for width in PHONES:
        phone_png = screenshot(url, artifact(f"demo-{name}-{width}.png"), width, 2600)
        phone = ink(phone_png)
        not_blank(phone)
        height = phone.size[1]
        assert ink(phone_png, (width - 8, 0, width, height)).box is None, (width, "right edge")
        assert ink(phone_png, (0, 0, 8, height)).box is None, (width, "left edge")


def test_the_explorer_follows_the_dark_scheme(demo_url: str) -> None:
    url = f"{demo_url}/?{urlencode(PICKS[0][1])}"
    light = ink(screenshot(url, artifact("demo-blocked-light.png"), 800, 600))
    dark_png = screenshot(url, artifact("demo-blocked-dark.png"), 800, 600, color_scheme="dark")
    dark = ink(dark_png)
    not_blank(dark)

    from PIL import Image

    with Image.open(dark_png) as image:
        corner = image.convert("L").getpixel((2, 2))
    assert isinstance(corner, int) and corner < 64, "the dark page's background is not dark"
    assert light.size == dark.size
