"""Headless Chromium (Debian's ``chromium``) for tests and scripts: screenshots and the DOM.

Each call starts a fresh browser as a subprocess (``--headless=new``, a new profile in a
temporary folder, no GPU) and waits for it with a timeout; on timeout the browser's whole
process group is killed by its PID. The browser reaches loopback only: every other host name
resolves to nothing and every other address goes to a proxy that does not exist, so a page
that tries to load something from the internet shows the failure instead of quietly passing.

    from browser import screenshot, dump_dom
    png = screenshot(base + "/", artifact("demo.png"), width=390, height=1600)
    dom = dump_dom(base + "/")
    page = load(tmp_path / "report.html")  # a Path: the file; .dom and .console

Screenshots go to :func:`artifacts` (``$GEOFENCE_ARTIFACTS``, else ``.artifacts/`` at the
repository root), where CI keeps them. Without ``chromium`` the functions raise
:class:`BrowserMissing`; tests use :func:`require_chromium`, which skips with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
# A cold start of Chromium takes 1-3 s here; CI machines can be several times slower.
TIMEOUT = 60.0
COLOR_SCHEMES = ("light", "dark")
LOAD_FAILED = re.compile(r"Page load failed: \S+")
# A console message as --enable-logging=stderr prints it.
CONSOLE = re.compile(r':CONSOLE[^\]]*\] "(.*)", source: ', re.M)


class BrowserMissing(RuntimeError):
    """No ``chromium`` program on PATH."""


class BrowserFailed(RuntimeError):
    """Chromium exited with an error, produced nothing, or ran out of time."""


def chromium() -> str:
    """The path of the ``chromium`` program, or :class:`BrowserMissing`."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise BrowserMissing(
            "chromium is not installed (Debian: apt-get install chromium fonts-noto-cjk)"
        )
    return found


def require_chromium() -> str:
    """For tests: the program's path, or skip the test saying what is missing."""
    import pytest

    try:
        return chromium()
    except BrowserMissing as missing:
        pytest.skip(str(missing))


def artifacts() -> Path:
    """Where screenshots go: ``$GEOFENCE_ARTIFACTS``, else ``.artifacts/`` at the repo root."""
    folder = Path(os.environ.get("GEOFENCE_ARTIFACTS") or PROJECT / ".artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifact(name: str) -> Path:
    return artifacts() / name


def screenshot(
    url: str | Path,
    path: str | Path,
    width: int = 1024,
    height: int = 768,
    *,
    color_scheme: str = "light",
    accept_language: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Path:
    """Load ``url`` in a ``width`` x ``height`` window and save what it shows as a PNG.

    The picture is the window (the top of a longer page), at one device pixel per CSS pixel.
    ``color_scheme`` is what the page's ``prefers-color-scheme`` sees; ``accept_language``
    ("fa", "zh-CN,en") is the browser's language list, sent as ``Accept-Language``; ``env``
    adds environment variables (``FONTCONFIG_FILE`` to draw with other fonts).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    _run(
        [
            f"--screenshot={target}",
            f"--window-size={width},{height}",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ],
        url,
        color_scheme,
        accept_language,
        env,
        timeout,
    )
    if not target.is_file() or target.stat().st_size == 0:
        raise BrowserFailed(f"chromium wrote no screenshot of {url} to {target}")
    return target


@dataclass(frozen=True)
class Loaded:
    """A page after it loaded: its serialized document and what it said on the console
    (Content-Security-Policy violations among them)."""

    dom: str
    console: tuple[str, ...]


def load(
    url: str | Path,
    width: int = 1024,
    height: int = 768,
    *,
    color_scheme: str = "light",
    accept_language: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Loaded:
    """Load ``url``; its document after load (``--dump-dom``) and its console messages."""
    extra = [f"--window-size={width},{height}", "--dump-dom", "--enable-logging=stderr", "--v=0"]
    out, err = _run(extra, url, color_scheme, accept_language, env, timeout)
    console = tuple(match.group(1) for match in CONSOLE.finditer(err))
    return Loaded(out.decode("utf-8", "replace"), console)


def dump_dom(
    url: str | Path,
    width: int = 1024,
    height: int = 768,
    *,
    color_scheme: str = "light",
    accept_language: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> str:
    """The document of ``url`` after it loaded, serialized (``--dump-dom``)."""
    extra = [f"--window-size={width},{height}", "--dump-dom"]
    out, _ = _run(extra, url, color_scheme, accept_language, env, timeout)
    return out.decode("utf-8", "replace")


def command(url: str, extra: Sequence[str], profile: str, color_scheme: str) -> list[str]:
    """The full command line (kept apart so a test can check the isolation flags)."""
    if color_scheme not in COLOR_SCHEMES:
        raise ValueError(f"color_scheme must be one of {COLOR_SCHEMES}, not {color_scheme!r}")
    flags = [
        chromium(),
        "--headless=new",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-domain-reliability",
        # A sandboxed frame would get a process of its own, painted after the screenshot is taken.
        "--disable-features=Translate,OptimizationHints,MediaRouter,IsolateSandboxedIframes",
        "--metrics-recording-only",
        "--no-pings",
        "--mute-audio",
        # Loopback only: names other than localhost resolve to nothing, and any other address
        # goes through a proxy on a port nobody listens on (loopback itself bypasses proxies).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--lang=en-US",
        f"--blink-settings=preferredColorScheme={0 if color_scheme == 'dark' else 1}",
    ]
    if color_scheme == "dark":
        flags.append("--force-dark-mode")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root (containers, CI).
        flags.append("--no-sandbox")
    return [*flags, *extra, url]


def _run(
    extra: Sequence[str],
    url: str | Path,
    color_scheme: str,
    accept_language: str | None,
    env: Mapping[str, str] | None,
    timeout: float,
) -> tuple[bytes, str]:
    if isinstance(url, Path):  # a file, such as an HTML report a test wrote
        url = url.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="geofence-chromium-") as profile:
        if accept_language:
            _set_languages(Path(profile), accept_language)
        process = subprocess.Popen(
            command(url, extra, profile, color_scheme),
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own process group, so that its helpers (zygote, renderer) go with it.
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.communicate()
            raise BrowserFailed(f"chromium took more than {timeout:.0f} s on {url}") from None
        finally:
            _kill_group(process.pid)  # helpers left behind by a browser that exited
        messages = err.decode("utf-8", "replace")
        # A page that fails to load still exits 0 and says so only on stderr.
        failed = LOAD_FAILED.search(messages)
        if process.returncode != 0 or failed:
            why = failed.group(0) if failed else f"exit status {process.returncode}"
            raise BrowserFailed(f"chromium on {url}: {why}\n{messages[-2000:]}")
        return out, messages


def _set_languages(profile: Path, languages: str) -> None:
    # --lang changes only the interface in headless mode; the header comes from the profile's
    # language list (Chromium adds the q-values itself).
    preferences = {"intl": {"selected_languages": languages, "accept_languages": languages}}
    (profile / "Default").mkdir()
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# -- looking at a screenshot ---------------------------------------------------------------


@dataclass(frozen=True)
class Ink:
    """Where a picture (or a part of it) differs from its background colour."""

    box: tuple[int, int, int, int] | None  # left, top, right, bottom (exclusive); None: blank
    share: float  # the fraction of its pixels that are ink
    size: tuple[int, int]  # width, height of what was looked at
    rows: tuple[int, ...]  # per row, how many pixels are ink
    columns: tuple[int, ...]  # per column, how many pixels are ink


def ink(
    path: str | Path, region: tuple[int, int, int, int] | None = None, threshold: int = 48
) -> Ink:
    """The ink of the PNG at ``path`` (within ``region``: left, top, right, bottom).

    The background is the most common colour; a pixel is ink when its difference from it
    (as grey, 0-255) is above ``threshold``: anti-aliased fringes and faint borders are not.
    """
    from PIL import Image, ImageChops

    with Image.open(path) as image:
        picture = image.convert("RGB")
    if region is not None:
        picture = picture.crop(region)
    width, height = picture.size
    colours = picture.getcolors(maxcolors=width * height) or []
    background = max(colours)[1] if colours else (255, 255, 255)
    difference = ImageChops.difference(picture, Image.new("RGB", picture.size, background))
    mask = difference.convert("L").point(lambda v: 255 if v > threshold else 0)
    inked = mask.histogram()[255]
    data = mask.tobytes()
    rows = tuple(data[y * width : (y + 1) * width].count(255) for y in range(height))
    columns = tuple(data[x::width].count(255) for x in range(width))
    return Ink(mask.getbbox(), inked / max(1, width * height), (width, height), rows, columns)


def bands(rows: Sequence[int], gap: int = 4) -> list[tuple[int, int]]:
    """Runs of rows with ink (top, bottom exclusive), split where ``gap`` blank rows meet:
    on a page, its blocks (a heading, a paragraph) from top to bottom."""
    found: list[tuple[int, int]] = []
    start = last = -1
    for y, count in enumerate(rows):
        if not count:
            continue
        if start < 0:
            start = y
        elif y - last - 1 >= gap:
            found.append((start, last + 1))
            start = y
        last = y
    if start >= 0:
        found.append((start, last + 1))
    return found


def glyphs(picture: Ink) -> list[int]:
    """The ink of each run of inked columns, left to right: in one line of text, roughly one
    run per glyph (touching glyphs make one run). A missing font draws every character as the
    same box, so its runs are all equal; real glyphs differ."""
    runs: list[int] = []
    run = 0
    for count in [*picture.columns, 0]:
        if count:
            run += count
        elif run:
            runs.append(run)
            run = 0
    return runs


def looks_like_tofu(runs: Sequence[int]) -> bool:
    """Whether the glyph runs of a line are the same box over and over (or nothing at all)."""
    if len(runs) < 2:
        return True
    distinct = {round(run / 4) for run in runs}  # within a few pixels of ink: the same box
    return len(distinct) <= max(1, len(runs) // 4)
