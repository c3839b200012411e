"""The page's language: geofence's Accept-Language negotiation against Babel's and Werkzeug's.

For each header in a table of real browser headers (mostly Chinese, where the script decides
whether the page can be read), every negotiator chooses among geofence's shipped languages
(``en``, ``zh-Hans``, ``zh-Hant``, ``ru``, ``uk``, ``fa``, ``ar``, ``es``, ``ko``) with ``en``
as the default, and the table shows who chose the language the reader expects:

- geofence: ``geofence.http._locale.negotiate``;
- Babel: ``babel.core.negotiate_locale`` (``Locale.negotiate`` gives the same answers: it
  calls it) with the header's ranges in preference order, as Werkzeug parses them (Babel has
  no header parser; Flask-Babel hands it Werkzeug's list);
- Werkzeug: ``request.accept_languages.best_match`` on a real ``werkzeug.Request``.

Then the cost of one negotiation (cached and uncached for geofence).

    python bench/locale_negotiation.py            # needs Babel and Werkzeug installed
    python bench/locale_negotiation.py --no-timing
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version

from babel.core import Locale, negotiate_locale
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from geofence.http import _locale
from geofence.http._locale import SHIPPED, canonical, negotiate

DEFAULT = "en"

#: (Accept-Language, the language its reader expects, where such a header comes from)
CASES: tuple[tuple[str, str, str], ...] = (
    ("zh-CN", "zh-Hans", "mainland China"),
    ("zh-SG", "zh-Hans", "Singapore"),
    ("zh-MY", "zh-Hans", "Malaysia"),
    ("zh", "zh-Hans", "bare language"),
    ("zh-Hans", "zh-Hans", "script only"),
    ("zh-Hans-CN", "zh-Hans", "script and region"),
    ("zh-TW", "zh-Hant", "Taiwan"),
    ("zh-HK", "zh-Hant", "Hong Kong"),
    ("zh-MO", "zh-Hant", "Macao"),
    ("zh-Hant", "zh-Hant", "script only"),
    ("zh-Hant-HK", "zh-Hant", "script and region"),
    ("zh-Hant-TW", "zh-Hant", "script and region"),
    ("zh-HK, en;q=0.5", "zh-Hant", "Chinese first, English second"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans", "Chrome, mainland China"),
    ("zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7", "zh-Hant", "Chrome, Taiwan"),
    ("zh-HK,zh-TW;q=0.9,zh;q=0.8,en;q=0.7", "zh-Hant", "Chrome, Hong Kong"),
    ("zh-CN,zh-Hans;q=0.9", "zh-Hans", "Safari on iOS, Simplified"),
    ("zh-TW,zh-Hant;q=0.9", "zh-Hant", "Safari on iOS, Traditional"),
    ("zh-tw", "zh-Hant", "lowercase (older browsers)"),
    ("zh_CN", "zh-Hans", "POSIX-style, from HTTP libraries"),
    ("fa-IR", "fa", "Iran"),
    ("fa-IR,fa;q=0.9,en-US;q=0.8,en;q=0.7", "fa", "Chrome, Iran"),
    ("fa-AF", "fa", "Afghanistan (Dari)"),
    ("ar-EG", "ar", "Egypt"),
    ("ar-SA,ar;q=0.9,en;q=0.8", "ar", "Chrome, Saudi Arabia"),
    ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru", "Chrome, Russia"),
    ("uk-UA,uk;q=0.9,ru;q=0.8", "uk", "Chrome, Ukraine"),
    ("ko-KR,ko;q=0.9,en-US;q=0.8", "ko", "Chrome, Korea"),
    ("es-419,es;q=0.9", "es", "Chrome, Latin America"),
    ("en-GB,en;q=0.9", "en", "Chrome, United Kingdom"),
    ("pt-BR,pt;q=0.9", "en", "not shipped: the default"),
    ("de-DE, *;q=0.5", "en", "wildcard: the default"),
)


def ours(header: str) -> str:
    return negotiate(header, SHIPPED, DEFAULT)


def _request(header: str) -> Request:
    return Request(EnvironBuilder(headers=[("Accept-Language", header)]).get_environ())


def werkzeug(header: str) -> str:
    return _request(header).accept_languages.best_match(SHIPPED, default=DEFAULT)


def _preferred(header: str) -> list[str]:
    # Werkzeug's parse, highest quality first: what a Babel user has to hand.
    return [value for value, _ in _request(header).accept_languages if value != "*"]


def babel(header: str) -> str:
    found = negotiate_locale(_preferred(header), SHIPPED, sep="-")
    return (canonical(found) or found) if found else DEFAULT


def babel_locale(header: str) -> str:
    found = Locale.negotiate(_preferred(header), SHIPPED, sep="-")
    if found is None:
        return DEFAULT
    return canonical(str(found)) or str(found)


NEGOTIATORS: dict[str, Callable[[str], str]] = {
    "geofence": ours,
    "Babel negotiate_locale": babel,
    "Werkzeug best_match": werkzeug,
}


def table() -> tuple[str, dict[str, int]]:
    """The markdown table of every case, and each negotiator's count of right answers."""
    names = list(NEGOTIATORS)
    right = dict.fromkeys(names, 0)
    lines = [
        "| Accept-Language | expected | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for header, expected, _where in CASES:
        cells = []
        for name in names:
            got = NEGOTIATORS[name](header)
            if got == expected:
                right[name] += 1
                cells.append(f"{got} ✓")
            else:
                cells.append(f"**{got}** ✗")
        lines.append(f"| `{header}` | {expected} | " + " | ".join(cells) + " |")
    lines.append(
        f"| **right** | {len(CASES)} cases | "
        + " | ".join(f"{right[name]}/{len(CASES)}" for name in names)
        + " |"
    )
    return "\n".join(lines), right


def timing() -> str:
    """Microseconds per negotiation of a typical Chrome header, best of five rounds."""
    header = "zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7"

    def cold() -> str:
        _locale._cache.clear()
        return ours(header)

    runs: dict[str, Callable[[], object]] = {
        "geofence (cached: the per-request case)": lambda: ours(header),
        "geofence (uncached: a new header value)": cold,
        "Babel negotiate_locale (given the parsed list)": lambda: negotiate_locale(
            ["zh-TW", "zh", "en-US", "en"], SHIPPED, sep="-"
        ),
        "Werkzeug parse + best_match (no Request around it)": lambda: parse_accept_header(
            header, LanguageAccept
        ).best_match(SHIPPED, default=DEFAULT),
    }
    lines = ["| negotiation of `" + header + "` | µs per call |", "|---|---|"]
    for name, run in runs.items():
        number = 2000
        best = min(timeit.repeat(run, number=number, repeat=5)) / number
        lines.append(f"| {name} | {best * 1e6:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Accept-Language: geofence vs Babel, Werkzeug")
    parser.add_argument("--no-timing", action="store_true", help="the table only")
    args = parser.parse_args(argv)
    # Babel's Locale.negotiate is negotiate_locale plus a parse: say so if that ever changes.
    differing = [h for h, _, _ in CASES if babel(h) != babel_locale(h)]
    print(
        f"Python {sys.version.split()[0]}, Babel {version('babel')}, "
        f"Werkzeug {version('werkzeug')}; offered = {', '.join(SHIPPED)}; default = {DEFAULT}"
    )
    print()
    text, _ = table()
    print(text)
    print()
    if differing:
        print("Babel Locale.negotiate differs from negotiate_locale on: " + ", ".join(differing))
    else:
        print("Babel Locale.negotiate gives the same answers as negotiate_locale on every case.")
    if not args.no_timing:
        print()
        print(timing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
