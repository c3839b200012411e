"""The block page as a browser gets it, in English, Simplified Chinese and Persian.

A real uvicorn serves the demo behind a pretend reverse proxy on loopback that says the client
is in China (``proxied_demo.py``), so ``/web/home`` is blocked; headless Chromium asks with its
own Accept header and a profile whose language list is en, zh-CN or fa (sent as
Accept-Language). The screenshots are kept as artifacts and looked at: the heading's ink sits
at the left margin in English and at the right margin in Persian, and the Chinese heading is
drawn with real glyphs, not the empty boxes of a missing font.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from browser import Ink, artifact, bands, glyphs, ink, load, looks_like_tofu, screenshot

# Chromium is a slow real component: tox runs these in one env of the matrix only.
pytestmark = [pytest.mark.server, pytest.mark.slow]

# (the browser's language list, the page language geofence should pick, its direction)
LANGUAGES = [("en", "en", "ltr"), ("zh-CN", "zh-Hans", "ltr"), ("fa", "fa", "rtl")]
IDS = [language for _, language, _ in LANGUAGES]
WIDTH, HEIGHT = 1024, 700
PHONE = 390
HAN = re.compile(r"[\u4e00-\u9fff]")
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]")


class PageDom(HTMLParser):
    """The block page's document: <html> attributes, the first heading's text, all text."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html: dict[str, str | None] = {}
        self.heading = ""
        self.text: list[str] = []
        self._in_heading = False
        self._headings = 0
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.html = dict(attrs)
        elif tag == "h1":
            self._headings += 1
            self._in_heading = self._headings == 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_heading:
            self.heading += data


def shot(url: str, browser_languages: str, language: str) -> Path:
    return screenshot(
        url + "/web/home",
        artifact(f"page-{language}-{WIDTH}.png"),
        WIDTH,
        HEIGHT,
        accept_language=browser_languages,
    )


@dataclass(frozen=True)
class Seen:
    """The block page as Chromium got it in one language: its document, its console, and a
    screenshot."""

    page: PageDom
    console: tuple[str, ...]
    png: Path


@pytest.fixture(scope="module")
def seen(proxied_demo_url: str) -> Callable[[str, str], Seen]:
    """Browse the block page once per language for all the tests of this module."""
    cache: dict[str, Seen] = {}

    def browse(browser_languages: str, language: str) -> Seen:
        if language not in cache:
            url = proxied_demo_url + "/web/home"
            loaded = load(url, WIDTH, HEIGHT, accept_language=browser_languages)
            png = shot(proxied_demo_url, browser_languages, language)
            cache[language] = Seen(PageDom(loaded.dom), loaded.console, png)
        return cache[language]

    return browse


def heading_band(picture: Ink) -> tuple[int, int]:
    """The rows of the heading: the first line of ink from the top (thin rules and box edges
    left out), which on the block page is the heading."""
    lines = [band for band in bands(picture.rows) if band[1] - band[0] >= 10]
    assert lines, "no text on the page"
    return lines[0]


def margins(png: Path, band: tuple[int, int]) -> tuple[int, int]:
    """(left, right): the empty space between the image's edges and the band's ink."""
    inked = ink(png, (0, band[0], WIDTH, band[1]))
    assert inked.box is not None
    return inked.box[0], WIDTH - inked.box[2]


@pytest.mark.parametrize(("browser_languages", "language", "direction"), LANGUAGES, ids=IDS)
def test_a_browser_gets_the_block_page(
    proxied_demo_url: str,
    seen: Callable[[str, str], Seen],
    browser_languages: str,
    language: str,
    direction: str,
) -> None:
    got = seen(browser_languages, language)
    assert got.page.heading.strip(), "no heading"
    assert "Home" not in got.page.heading  # the app's own page was not served
    # The page's one style sheet applies under its own strict policy; it loads nothing else.
    assert not [m for m in got.console if "Content Security Policy" in m], got.console
    picture = ink(got.png)
    assert picture.box is not None, "blank screenshot"
    assert 0.003 < picture.share < 0.3, picture.share
    # What the browser received, asked the same way (its Accept, its language list).
    response = httpx.get(
        proxied_demo_url + "/web/home",
        headers={"accept": "text/html,*/*;q=0.8", "accept-language": browser_languages},
        timeout=10,
    )
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("browser_languages", "language", "direction"), LANGUAGES, ids=IDS)
def test_the_block_page_speaks_the_browsers_language(
    proxied_demo_url: str,
    seen: Callable[[str, str], Seen],
    browser_languages: str,
    language: str,
    direction: str,
) -> None:
    page = seen(browser_languages, language).page
    assert page.html.get("lang") == language
    assert (page.html.get("dir") or "ltr") == direction
    response = httpx.get(
        proxied_demo_url + "/web/home",
        headers={"accept": "text/html", "accept-language": browser_languages},
        timeout=10,
    )
    assert response.headers.get("content-language") == language
    if language == "zh-Hans":
        assert HAN.search(page.heading), page.heading
    elif language == "fa":
        assert ARABIC_SCRIPT.search(page.heading), page.heading
    else:
        assert page.heading.isascii()


@pytest.mark.parametrize(
    ("browser_languages", "language", "side"),
    [("en", "en", "left"), ("fa", "fa", "right")],
    ids=["en", "fa"],
)
def test_the_heading_hugs_the_reading_side(
    seen: Callable[[str, str], Seen], browser_languages: str, language: str, side: str
) -> None:
    png = seen(browser_languages, language).png
    picture = ink(png)
    left, right = margins(png, heading_band(picture))
    if side == "right":
        assert right < left, (left, right)
    else:
        assert left < right, (left, right)
    # Not the heading alone: every line of the page starts on the reading side, so the edges
    # on that side line up (a small spread) while the other ends are ragged.
    lines = [band for band in bands(picture.rows) if band[1] - band[0] >= 6]
    edges = [margins(png, band) for band in lines]
    assert len(edges) >= 3, edges
    lefts = statistics.pstdev(edge[0] for edge in edges)
    rights = statistics.pstdev(edge[1] for edge in edges)
    assert (rights < lefts) if side == "right" else (lefts < rights), (edges, lefts, rights)


@pytest.mark.parametrize(("browser_languages", "language", "direction"), LANGUAGES, ids=IDS)
def test_the_block_page_fits_a_phone(
    proxied_demo_url: str, browser_languages: str, language: str, direction: str
) -> None:
    png = screenshot(
        proxied_demo_url + "/web/home",
        artifact(f"page-{language}-{PHONE}.png"),
        PHONE,
        HEIGHT,
        accept_language=browser_languages,
    )
    picture = ink(png)
    assert picture.box is not None, "blank screenshot"
    # Nothing runs into the window's edges (the page keeps a margin): no sideways scrolling.
    assert ink(png, (PHONE - 8, 0, PHONE, HEIGHT)).box is None, "ink at the right edge"
    assert ink(png, (0, 0, 8, HEIGHT)).box is None, "ink at the left edge"
    # The text is the phone's width, not a desktop layout shrunk or cut.
    left, _, right, _ = picture.box
    assert right - left > PHONE * 0.6, picture.box


LATIN_ONLY_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{cache}</cachedir></fontconfig>
"""


def test_the_chinese_heading_is_drawn_with_real_glyphs(
    proxied_demo_url: str, seen: Callable[[str, str], Seen], tmp_path: Path
) -> None:
    png = seen("zh-CN", "zh-Hans").png
    top, bottom = heading_band(ink(png))
    drawn = glyphs(ink(png, (0, top, WIDTH, bottom)))
    assert not looks_like_tofu(drawn), drawn
    # The same page drawn with a Latin-only font set (DejaVu, which has no Han glyphs): what
    # a machine without fonts-noto-cjk shows. It must look like tofu, or the check above
    # could not tell the two apart.
    fonts = tmp_path / "fonts.conf"
    fonts.write_text(LATIN_ONLY_FONTS.format(cache=tmp_path / "cache"))
    if not Path("/usr/share/fonts/truetype/dejavu").is_dir():
        pytest.skip("fonts-dejavu-core is not installed: no Latin-only font set to compare")
    fallback = screenshot(
        proxied_demo_url + "/web/home",
        artifact("page-zh-Hans-without-cjk-fonts.png"),
        WIDTH,
        HEIGHT,
        accept_language="zh-CN",
        env={"FONTCONFIG_FILE": str(fonts)},
    )
    top, bottom = heading_band(ink(fallback))
    boxes = glyphs(ink(fallback, (0, top, WIDTH, bottom)))
    assert looks_like_tofu(boxes), boxes
    assert drawn != boxes
