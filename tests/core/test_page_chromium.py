"""The built-in page in headless Chromium: its own Content-Security-Policy lets its style sheet
apply (no violation on the console), dark mode follows the system, the right-to-left page is
mirrored (the accent colour of the link and the reference box sits on the right), and the
phone-width page keeps the reference on screen.

The core's responses are served as they are by a small HTTP server on loopback (started and
stopped by the test); Chromium asks with its own Accept header and language list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser import artifact, load, require_chromium, screenshot

import geofence
from geofence._model import Decision
from geofence.http._responses import Responder

REF = "7K2MQ-X9PTW"
ACCENT = {"light": (0x0B, 0x57, 0xD0), "dark": (0x8A, 0xB4, 0xF8)}
DECISIONS = {
    "block": Decision("block", True, "rule", rule="r", status=451, ref=REF),
    "suspended": Decision("block", True, "account_suspended", status=403, ref=REF),
    "unavailable": Decision("block", True, "db_error", status=503, ref=REF),
}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    require_chromium()
    answers = Responder(
        geofence.load_policy({"info_url": "https://example.com/supported-countries"})
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            decision = DECISIONS[self.path.strip("/")]
            response = answers.denial(
                decision, self.headers.get("accept"), self.headers.get("accept-language")
            )
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    from PIL import Image

    with Image.open(path) as image:
        picture = image.convert("RGB")
    raw = picture.tobytes()
    return picture.width, picture.height, list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))


def near(colour: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=True))


def accent_columns(path: Path, scheme: str) -> list[int]:
    width, _, data = pixels(path)
    return [i % width for i, colour in enumerate(data) if near(colour, ACCENT[scheme], 24)]


@pytest.mark.parametrize("kind", list(DECISIONS))
def test_the_style_sheet_applies_under_its_own_csp(base: str, kind: str) -> None:
    loaded = load(f"{base}/{kind}", accept_language="fa")
    violations = [m for m in loaded.console if "Content Security Policy" in m]
    assert violations == []
    assert '<html lang="fa" dir="rtl">' in loaded.dom
    assert REF in loaded.dom


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_dark_mode_follows_the_system(base: str, scheme: str) -> None:
    shot = screenshot(
        f"{base}/block",
        artifact(f"core-page-en-{scheme}.png"),
        390,
        800,
        color_scheme=scheme,
        accept_language="en",
    )
    _, _, data = pixels(shot)
    grey = sum(data[0]) / 3  # the page's background, top left
    assert (grey < 60) if scheme == "dark" else (grey > 200), data[0]
    assert accent_columns(shot, scheme), "the link and the reference box use the accent colour"


@pytest.mark.parametrize(("language", "rtl"), [("en", False), ("fa", True), ("ar", True)])
def test_right_to_left_is_mirrored(base: str, language: str, rtl: bool) -> None:
    shot = screenshot(
        f"{base}/block",
        artifact(f"core-page-{language}-390.png"),
        390,
        800,
        accept_language=language,
    )
    width, _, _ = pixels(shot)
    columns = accent_columns(shot, "light")
    right = sum(1 for x in columns if x > width / 2)
    left = len(columns) - right
    # The "More information" link and the reference box's edge (border-inline-start).
    assert (right > 3 * left) if rtl else (left > 3 * right), (left, right)


def test_the_phone_page_keeps_the_reference_on_screen(base: str) -> None:
    # 320 CSS pixels: the narrowest phones. The reference box is the only large grey-blue
    # well on the page; it must end inside the window, not run off its edge.
    shot = screenshot(
        f"{base}/suspended",
        artifact("core-page-suspended-ru-320.png"),
        320,
        900,
        accept_language="ru",
    )
    width, _, data = pixels(shot)
    well = (0xEE, 0xF1, 0xF5)
    columns = [i % width for i, colour in enumerate(data) if colour == well]
    assert columns, "the reference box is on screen"
    assert max(columns) < width - 8 and min(columns) > 8
