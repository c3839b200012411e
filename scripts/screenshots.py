#!/usr/bin/env python3
"""Regenerate the README's screenshots (docs/images/) with headless Chromium.

    python scripts/screenshots.py [--out docs/images] [--max-kb 150]

Serves ``geofence demo`` with a real uvicorn on loopback, and the same demo behind a pretend
reverse proxy that says the client is in China (tests/browser/proxied_demo.py), then takes
the pictures with the tests' browser harness (tests/helpers/browser.py):

- demo-blocked.png   the demo's explorer, a browser in China asking for /web/home (laptop)
- demo-warned.png    the explorer on a phone: a client in Belarus in its grace period
- demo-dark.png      the explorer in dark mode
- page-en.png, page-zh-Hans.png, page-fa.png   the block page a browser gets in English,
                     Simplified Chinese and Persian (right to left), on a phone
- replay-report.png  ``geofence replay --html`` on examples/replay (July 9 against today's
                     policy, as in the README)

Each PNG is reduced to a 256-colour palette (screenshots of text lose nothing visible) and
must stay under ``--max-kb``. Needs chromium, uvicorn and Pillow (the dev environment).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "helpers"), str(ROOT / "tests" / "browser"), str(ROOT)]

from browser import BrowserMissing, chromium, screenshot  # noqa: E402
from servers import serve  # noqa: E402

PHONE = (390, 700)

Shot = tuple[str, str, str, tuple[int, int], dict[str, str]]  # name, server, path, size, options


def shots() -> list[Shot]:
    blocked = urlencode({"country": "CN", "path": "/web/home", "client": "browser", "lang": "en"})
    warned = urlencode({"country": "BY", "path": "/v1/models", "client": "api", "lang": "en"})
    return [
        ("demo-blocked.png", "demo", f"/?{blocked}", (1100, 1450), {}),
        ("demo-warned.png", "demo", f"/?{warned}", (390, 2300), {}),
        ("demo-dark.png", "demo", f"/?{blocked}", (1100, 1000), {"color_scheme": "dark"}),
        ("page-en.png", "proxied", "/web/home", PHONE, {"accept_language": "en"}),
        ("page-zh-Hans.png", "proxied", "/web/home", PHONE, {"accept_language": "zh-CN"}),
        ("page-fa.png", "proxied", "/web/home", PHONE, {"accept_language": "fa"}),
    ]


def shrink(path: Path) -> int:
    """Re-save ``path`` as a 256-colour PNG; its size in bytes."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--max-kb", type=int, default=150)
    args = parser.parse_args(argv)
    try:
        chromium()
    except BrowserMissing as missing:
        print(missing, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    apps = {"demo": "geofence.cli.demo:create_app", "proxied": "proxied_demo:create_app"}
    too_big = []
    with (
        serve("uvicorn", apps["demo"], cwd=ROOT / "tests" / "browser", extra_args=_FLAGS) as demo,
        serve(
            "uvicorn", apps["proxied"], cwd=ROOT / "tests" / "browser", extra_args=_FLAGS
        ) as proxied,
    ):
        bases = {"demo": demo, "proxied": proxied}
        for name, server, path, (width, height), options in shots():
            target = args.out / name
            take: Callable[..., Path] = screenshot
            take(bases[server] + path, target, width, height, **options)
            size = shrink(target)
            print(
                f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
                f"{width}x{height}, {size // 1024} KB"
            )
            if size > args.max_kb * 1024:
                too_big.append(name)
    size = replay_report(args.out / "replay-report.png")
    print(f"replay-report.png: {REPLAY_SIZE[0]}x{REPLAY_SIZE[1]}, {size // 1024} KB")
    if size > args.max_kb * 1024:
        too_big.append("replay-report.png")
    if too_big:
        print(f"over {args.max_kb} KB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


_FLAGS = ["--factory", "--no-proxy-headers"]
REPLAY_SIZE = (960, 1640)


def replay_report(target: Path) -> int:
    """The README's replay walkthrough as ``--html`` draws it; the PNG's size in bytes."""
    import tempfile

    from geofence import cli

    examples = ROOT / "examples" / "replay"
    with tempfile.TemporaryDirectory(prefix="geofence-replay-html-") as folder:
        page = Path(folder) / "report.html"
        argv = ["replay", "examples/replay/access.log", "--html", str(page)]
        argv += ["--config", "examples/replay/policy-july9.toml"]
        argv += ["--baseline", "examples/replay/policy-current.toml"]
        argv += ["--at", "2027-07-10T00:00:00Z"]
        assert examples.is_dir()
        here = os.getcwd()
        os.chdir(ROOT)  # the page shows the log's path as the README's command gives it
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                status = cli.main(argv)
        finally:
            os.chdir(here)
        if status != 0:
            raise SystemExit(f"geofence replay exited with {status}")
        screenshot(page, target, *REPLAY_SIZE)
    return shrink(target)


if __name__ == "__main__":
    sys.exit(main())
