"""The Chromium harness itself (tests/helpers/browser.py): it reaches loopback and nothing
else, kills a browser that hangs, says what is missing, and reads pictures correctly."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser
import pytest
from browser import (
    BrowserFailed,
    BrowserMissing,
    bands,
    dump_dom,
    glyphs,
    ink,
    looks_like_tofu,
    screenshot,
)

# Chromium is a slow real component: tox runs these in one env of the matrix only.
pytestmark = pytest.mark.slow


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a tiny page or image and remembers the path."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = getattr(self.server, "page", b"ok")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def outward_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def living_in_group(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies, dead but not yet
    reaped by whoever inherited them, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        pytest.skip("no /proc to list processes")
    living = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == group and state not in ("Z", "X"):
            living.append(int(entry.name))
    return living


@pytest.fixture
def recorder() -> Iterator[tuple[http.server.HTTPServer, list[str]]]:
    """An HTTP server on every interface (port chosen by the kernel) that records requests."""
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_browser_reaches_loopback_and_nothing_else(
    chromium: str, recorder: tuple[Any, list[str]]
) -> None:
    server, seen = recorder
    port = server.server_address[1]
    outward = outward_address()
    if outward is None:
        pytest.skip("this machine has no address besides loopback to try")
    # The page asks for one image on loopback and one on this machine's outward address: the
    # same server answers both, so a request that left through the network would be seen.
    server.page = (
        f'<img src="http://127.0.0.1:{port}/loopback.png">'
        f'<img src="http://{outward}:{port}/outward.png">'
        f'<img src="http://geofence-test.invalid:{port}/named.png">'
    ).encode()
    dom = dump_dom(f"http://127.0.0.1:{port}/page")
    assert "outward.png" in dom  # the page was loaded, images and all
    assert "/page" in seen and "/loopback.png" in seen
    assert "/outward.png" not in seen
    assert "/named.png" not in seen


def test_a_hanging_page_is_killed_by_pid(
    chromium: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = real(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr("browser.subprocess.Popen", recording)
    # A listener that never accepts: the page never loads.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(BrowserFailed, match="took more than 3 s"):
            screenshot(url, tmp_path / "never.png", timeout=3)
    (process,) = started
    assert process.returncode is not None
    assert living_in_group(process.pid) == [], "a renderer or helper was left behind"
    assert not (tmp_path / "never.png").exists()


def test_a_page_that_fails_to_load_is_an_error(chromium: str, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: the connection is refused
        with pytest.raises(BrowserFailed, match="ERR_CONNECTION_REFUSED"):
            dump_dom(f"http://127.0.0.1:{port}/")


def test_each_browser_gets_a_fresh_profile(chromium: str) -> None:
    flags = browser.command("http://127.0.0.1/", ["--dump-dom"], "/tmp/profile-a", "light")
    assert flags[0] == chromium
    assert "--headless=new" in flags and "--disable-gpu" in flags
    assert "--user-data-dir=/tmp/profile-a" in flags
    assert ("--no-sandbox" in flags) == (os.geteuid() == 0)
    assert flags[-1] == "http://127.0.0.1/"
    with pytest.raises(ValueError, match="color_scheme"):
        browser.command("http://127.0.0.1/", [], "/tmp/p", "sepia")


def test_without_chromium_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrowserMissing, match="apt-get install chromium"):
        browser.chromium()
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        browser.require_chromium()


def test_artifacts_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOFENCE_ARTIFACTS", str(tmp_path / "kept"))
    assert browser.artifact("x.png") == tmp_path / "kept" / "x.png"
    assert (tmp_path / "kept").is_dir()
    monkeypatch.delenv("GEOFENCE_ARTIFACTS")
    assert browser.artifacts() == browser.PROJECT / ".artifacts"


# -- reading pictures (Pillow only) ---------------------------------------------------------


def test_ink_finds_marks_on_any_background(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    for background, mark in (("white", "black"), ("#14171b", "#e6e8eb")):
        image = Image.new("RGB", (200, 100), background)
        draw = ImageDraw.Draw(image)
        draw.rectangle((150, 10, 179, 19), fill=mark)  # a "heading" near the right
        draw.rectangle((20, 40, 179, 44), fill=mark)  # a "paragraph" line
        path = tmp_path / "marks.png"
        image.save(path)
        found = ink(path)
        assert found.box == (20, 10, 180, 45)
        assert bands(found.rows) == [(10, 20), (40, 45)]
        assert found.share == pytest.approx((30 * 10 + 160 * 5) / (200 * 100))
        assert ink(path, (0, 0, 100, 30)).box is None  # nothing in the top-left quarter
    blank = tmp_path / "blank.png"
    Image.new("RGB", (50, 50), "white").save(blank)
    assert ink(blank).box is None and ink(blank).share == 0


def test_tofu_is_the_same_box_again_and_again(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (300, 40), "white")
    draw = ImageDraw.Draw(image)
    for n in range(6):
        draw.rectangle((10 + n * 30, 10, 30 + n * 30, 30), outline="black")
    tofu = tmp_path / "tofu.png"
    image.save(tofu)
    assert looks_like_tofu(glyphs(ink(tofu)))
    # Different shapes are not tofu.
    image = Image.new("RGB", (300, 40), "white")
    draw = ImageDraw.Draw(image)
    for n in range(6):
        draw.rectangle((10 + n * 30, 10, 14 + n * 30 + 3 * n, 30 - 2 * n), fill="black")
    shapes = tmp_path / "shapes.png"
    image.save(shapes)
    assert not looks_like_tofu(glyphs(ink(shapes)))
    assert looks_like_tofu([])


def test_a_file_is_opened_by_its_path(chromium: str, tmp_path: Path) -> None:
    report = tmp_path / "report with spaces.html"
    report.write_text("<!doctype html><h1>Report</h1><p>r\u00e9sum\u00e9</p>", encoding="utf-8")
    loaded = browser.load(report)
    assert "<h1>Report</h1>" in loaded.dom and "résumé" in loaded.dom
    picture = ink(screenshot(report, tmp_path / "report.png", 400, 300))
    assert picture.box is not None
