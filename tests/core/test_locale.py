"""The page's language: Accept-Language negotiation (RFC 4647 lookup with the Chinese script
table), text direction, and the shipped gettext catalogues with their compiler."""

from __future__ import annotations

import gettext
import importlib.util
import logging
import random
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.http import _locale
from geofence.http._locale import (
    LOCALE_DIR,
    MAX_LENGTH,
    MAX_RANGES,
    MSGIDS,
    RTL,
    SHIPPED,
    canonical,
    direction,
    negotiate,
    translator,
)

ROOT = Path(__file__).resolve().parents[2]
COMPILER = ROOT / "scripts" / "compile_catalogues.py"
ALL = SHIPPED
NO_HANT = tuple(tag for tag in SHIPPED if tag != "zh-Hant")
NO_HANS = tuple(tag for tag in SHIPPED if tag != "zh-Hans")


def _compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_catalogues", COMPILER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up by name while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compiler = _compiler()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Each case must be decided by the code, not remembered from an earlier test.
    _locale._cache.clear()
    yield
    _locale._cache.clear()


# -- Negotiation: exhaustive small cases ---------------------------------------------------

CHINESE = [
    # Simplified: mainland China, Singapore, Malaysia, the bare language, an explicit script.
    ("zh-CN", "zh-Hans"),
    ("zh-SG", "zh-Hans"),
    ("zh-MY", "zh-Hans"),
    ("zh", "zh-Hans"),
    ("zh-Hans", "zh-Hans"),
    ("zh-Hans-CN", "zh-Hans"),
    ("zh-Hans-SG", "zh-Hans"),
    ("zh-Hans-HK", "zh-Hans"),  # the script says so, whatever the region
    ("zh-Hans-TW", "zh-Hans"),
    # Traditional: Taiwan, Hong Kong, Macao, an explicit script.
    ("zh-TW", "zh-Hant"),
    ("zh-HK", "zh-Hant"),
    ("zh-MO", "zh-Hant"),
    ("zh-Hant", "zh-Hant"),
    ("zh-Hant-TW", "zh-Hant"),
    ("zh-Hant-HK", "zh-Hant"),
    ("zh-Hant-MO", "zh-Hant"),
    ("zh-Hant-CN", "zh-Hant"),
    # Any case, POSIX underscores, longer tags (variants, extensions, private use).
    ("ZH-hk", "zh-Hant"),
    ("zh-tw", "zh-Hant"),
    ("Zh-Cn", "zh-Hans"),
    ("zh_TW", "zh-Hant"),
    ("zh_CN", "zh-Hans"),
    ("zh-HANT", "zh-Hant"),
    ("zh-hans-cn", "zh-Hans"),
    ("zh-Hant-HK-u-nu-hanidec", "zh-Hant"),
    ("zh-CN-x-private", "zh-Hans"),
    ("zh-Hant-x-foo", "zh-Hant"),
    # Regions CLDR's likely subtags write in Traditional; any other region is Simplified.
    ("zh-US", "zh-Hant"),
    ("zh-AU", "zh-Hant"),
    ("zh-FR", "zh-Hans"),
    ("zh-419", "zh-Hans"),
    # Han unspecified says nothing: the region decides.
    ("zh-Hani-HK", "zh-Hant"),
    ("zh-Hani", "zh-Hans"),
    # Bopomofo annotates Traditional characters (Taiwan).
    ("zh-Bopo", "zh-Hant"),
    # Mandarin and Cantonese, as language or extended-language subtags.
    ("cmn", "zh-Hans"),
    ("cmn-Hant-TW", "zh-Hant"),
    ("cmn-TW", "zh-Hant"),
    ("zh-cmn-Hans-CN", "zh-Hans"),
    ("zh-cmn-Hant", "zh-Hant"),
    ("yue", "zh-Hant"),
    ("yue-HK", "zh-Hant"),
    ("zh-yue", "zh-Hant"),
    ("yue-CN", "zh-Hans"),
    ("yue-Hans", "zh-Hans"),
    # Another Chinese variety as an extended language subtag: Chinese, by lookup.
    ("zh-hak-TW", "zh-Hant"),
]


@pytest.mark.parametrize(("header", "expected"), CHINESE)
def test_chinese_script_table(header: str, expected: str) -> None:
    assert negotiate(header, ALL, "en") == expected


@pytest.mark.parametrize(
    ("header", "offered", "expected"),
    [
        # A script that is not offered never falls back to the other one (lookup would
        # truncate zh-HK to zh, and zh is Simplified).
        ("zh-HK", NO_HANT, "en"),
        ("zh-TW", NO_HANT, "en"),
        ("zh-Hant-TW", NO_HANT, "en"),
        ("zh-CN", NO_HANS, "en"),
        ("zh", NO_HANS, "en"),
        ("yue", NO_HANT, "en"),
        # ... but a header that also accepts the other script gets it.
        ("zh-HK, zh-CN;q=0.5", NO_HANT, "zh-Hans"),
        ("zh-TW, zh;q=0.9", NO_HANT, "zh-Hans"),
        ("zh-TW, zh;q=0.9, en;q=0.8", NO_HANT, "zh-Hans"),
        # Pinyin (Latin script) is no script geofence ships.
        ("zh-Latn", ALL, "en"),
        ("zh-Latn-CN, ko;q=0.5", ALL, "ko"),
    ],
)
def test_chinese_never_crosses_scripts(
    header: str, offered: tuple[str, ...], expected: str
) -> None:
    assert negotiate(header, offered, "en") == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Lookup truncates a range until a shipped tag matches.
        ("fa-IR", "fa"),
        ("fa-AF", "fa"),
        ("prs", "fa"),  # Dari, Persian script
        ("prs-AF", "fa"),
        ("pes", "fa"),
        ("ar-EG", "ar"),
        ("ar-SA", "ar"),
        ("ar-001", "ar"),
        ("arb", "ar"),
        ("ar-arb-EG", "ar"),
        ("es-419", "es"),
        ("es-MX", "es"),
        ("es-ES", "es"),
        ("uk-UA", "uk"),
        ("ru-RU", "ru"),
        ("ru-UA", "ru"),
        ("ko-KR", "ko"),
        ("ko-KP", "ko"),
        ("en-GB", "en"),
        ("en-US-x-twain", "en"),  # the singleton is dropped with what follows it
        ("en-x", "en"),
        ("es-u-nu-latn", "es"),
        ("EN-us", "en"),
        ("en_GB", "en"),
        # Not shipped: the default.
        ("pt", "uk"),
        ("pt-BR", "uk"),
        ("de-DE", "uk"),
        ("be", "uk"),  # Belarusian is not Russian: never substitute a language
        ("und", "uk"),
        ("x-klingon", "uk"),
        ("i-klingon", "uk"),
        ("", "uk"),
        ("*", "uk"),
    ],
)
def test_lookup(header: str, expected: str) -> None:
    assert negotiate(header, ALL, "uk") == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Highest weight first, wherever it stands.
        ("en;q=0.5, ru", "ru"),
        ("en;q=0.1, ko;q=0.2, ar;q=0.3", "ar"),
        ("ar;q=0.3, en;q=0.1, ko;q=0.2", "ar"),
        ("fr, ru;q=0.9, en;q=0.8", "ru"),
        # Equal weights keep the header's order.
        ("ko, ru", "ko"),
        ("ru, ko", "ru"),
        ("ko;q=0.5, ru;q=0.5", "ko"),
        ("ru;q=0.5, ko;q=0.500", "ru"),
        ("ko;q=1, ru", "ko"),
        # q=0 means "not acceptable": never chosen.
        ("ru;q=0", "es"),
        ("ru;q=0.0, ko;q=0.1", "ko"),
        ("ru;q=0.000", "es"),
        ("zh-CN;q=0, zh-TW;q=0.5", "zh-Hant"),
        # "*" never picks anything itself (RFC 4647 3.4), whatever its weight.
        ("*", "es"),
        ("*, ru;q=0.5", "ru"),
        ("*;q=0.9, ko;q=0.1", "ko"),
        ("de, *;q=0.5", "es"),
        # Whitespace and case (RFC 9110 OWS; "Q" is the same parameter).
        ("  ko  ;  q=0.5  ,\tru ; Q=0.6", "ru"),
        ("ko;Q=0.5,ru;q=0.4", "ko"),
        # Empty list elements are skipped.
        (",, ,ko,", "ko"),
        # Malformed elements are skipped, the rest still counts.
        ("ko;q=2, ru", "ru"),
        ("ko;q=0.1234, ru;q=0.1", "ru"),
        ("ko;q=, ru;q=0.1", "ru"),
        ("ko;q=-1, ru;q=0.1", "ru"),
        ("ko;q=abc, ru;q=0.1", "ru"),
        ("ko;q=1.5, ru;q=0.1", "ru"),
        ("ko;foo=bar, ru;q=0.1", "ru"),
        ("ko;q=0.5;q=0.6, ru;q=0.1", "ru"),
        ("ko-, ru", "ru"),
        ("-ko, ru", "ru"),
        ("ko--KR, ru", "ru"),
        ("abcdefghi, ru", "ru"),
        ("ko-abcdefghi, ru", "ru"),
        ("k o, ru", "ru"),
        ("ko\x00, ru", "ru"),
        ("кo, ru", "ru"),
        ("ko\u00a0, ru", "ru"),
        ('"ko", ru', "ru"),
        ("1ko, ru", "ru"),
        ("ko;, ru", "ru"),
        # The same language twice: its first (best) weight counts.
        ("ko;q=0.9, ru;q=0.5, ko;q=0.1", "ko"),
    ],
)
def test_weights_order_and_malformed(header: str, expected: str) -> None:
    assert negotiate(header, ALL, "es") == expected


@pytest.mark.parametrize(
    ("header", "offered", "expected"),
    [
        # Only what the operator offers is chosen, in the reader's order.
        ("ru, uk", ("en", "uk"), "uk"),
        ("uk, ru", ("en", "ru"), "ru"),
        ("zh-CN, ko;q=0.5", ("en", "ko"), "ko"),
        ("fa-IR, ar;q=0.5, en;q=0.1", ("en", "ar"), "ar"),
        ("fa", (), "en"),
        ("fa", ("en",), "en"),
        # The default is returned as given, offered or not.
        ("de", ("ru",), "en"),
        # A tag that is not shipped is never chosen, even when offered.
        ("pt", ("pt", "en"), "en"),
    ],
)
def test_offered(header: str, offered: tuple[str, ...], expected: str) -> None:
    assert negotiate(header, offered, "en") == expected


def test_offered_may_be_any_sequence() -> None:
    assert negotiate("ko", ["en", "ko"], "en") == "ko"
    assert negotiate("ko", ("en", "ko"), "en") == "ko"


def test_no_header_is_the_default() -> None:
    assert negotiate(None, ALL, "ar") == "ar"
    assert negotiate("", ALL, "ar") == "ar"


def test_the_cache_remembers_the_header_not_the_offer() -> None:
    # One cached entry serves every [page] languages list and default.
    assert negotiate("zh-HK, ko;q=0.5", ALL, "en") == "zh-Hant"
    assert negotiate("zh-HK, ko;q=0.5", NO_HANT, "en") == "ko"
    assert negotiate("zh-HK, ko;q=0.5", ("en",), "ru") == "ru"
    assert list(_locale._cache) == ["zh-HK, ko;q=0.5"]


def test_the_cache_is_bounded() -> None:
    limit = _locale._cache.limit
    for index in range(limit * 3):
        negotiate(f"ko;q=0.{index % 1000:03d}, x-{index}", ALL, "en")
        assert len(_locale._cache) <= limit


def test_a_long_header_is_not_cached() -> None:
    header = "ko, " + "en;q=0.1, " * 200
    assert negotiate(header, ALL, "ru") == "ko"
    assert header not in _locale._cache


def test_only_the_first_ranges_count() -> None:
    # A range after MAX_RANGES list elements is never read, whatever its weight.
    filler = ", ".join(["x-a"] * (MAX_RANGES - 1))
    assert negotiate(f"{filler}, ko", ALL, "en") == "ko"
    assert negotiate(f"{filler}, x-b, ko", ALL, "en") == "en"
    assert negotiate(f"{filler}, x-b, ko;q=1", ALL, "en") == "en"


def test_only_the_first_characters_count() -> None:
    padding = " " * (MAX_LENGTH - len("en;q=0.1,"))
    assert negotiate(f"en;q=0.1,{padding[:-4]}ko", ALL, "ru") == "ko"
    # A range cut by the limit is dropped, not read as its first letters ("ko" of "kor").
    assert negotiate(f"en;q=0.1,{padding}ko", ALL, "ru") == "en"
    assert negotiate(f"en;q=0.1,{padding[:-2]}ko-KR", ALL, "ru") == "en"


def test_a_megabyte_header_is_answered() -> None:
    header = "zh-HK, " + "a" * 1_000_000
    assert negotiate(header, ALL, "en") == "zh-Hant"
    header = "-".join(["zh"] + ["abc"] * 300_000)
    assert negotiate(header, ALL, "en") == "en"


# -- Negotiation: fuzz -----------------------------------------------------------------------

_PIECES = [
    *SHIPPED,
    "zh-CN",
    "zh-HK",
    "zh-TW",
    "zh-Hant-HK",
    "zh_SG",
    "yue",
    "cmn-Hans",
    "fa-IR",
    "ar-EG",
    "es-419",
    "pt-BR",
    "*",
    "x-private",
    "i-default",
    "en-US-x-twain",
    "zh-x",
    "-",
    ";",
    "=",
    ",",
    "q",
    ";q=",
    ";q=0",
    ";q=1",
    ";q=0.5",
    ";q=1.001",
    ";q=NaN",
    ";q=inf",
    ";q=1e3",
    "\t",
    " ",
    '"',
    "\\",
    "\x00",
    "\r\n",
    "\u00e9",
    "\u4e2d\u6587",
    "\ufeff",
    "\U0001f600",
    "zh-" * 50,
    "a" * 9,
]


def _hostile_header(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
    if kind < 0.8:
        alphabet = string.printable + "\u00e9\u4e2d\ufeff\x00\x7f"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
    # Long ones: many ranges, or one long run.
    return ",".join(rng.choice(_PIECES) for _ in range(rng.randint(30, 400)))


def test_seeded_fuzz_never_raises_and_answers_an_offered_tag() -> None:
    rng = random.Random(20261203)
    for _ in range(20_000):
        header = _hostile_header(rng)
        offered = tuple(rng.sample(SHIPPED, rng.randint(0, len(SHIPPED))))
        default = rng.choice((*SHIPPED, "en"))
        got = negotiate(header, offered, default)
        assert got in offered or got == default, (header, offered, default, got)
        # The cached answer is the computed one.
        assert negotiate(header, offered, default) == got


@settings(max_examples=500, deadline=None)
@given(
    header=st.text(max_size=300),
    offered=st.lists(st.sampled_from(SHIPPED), unique=True),
    default=st.sampled_from(SHIPPED),
)
def test_any_text_gives_an_offered_tag_or_the_default(
    header: str, offered: list[str], default: str
) -> None:
    got = negotiate(header, offered, default)
    assert got in offered or got == default


@settings(max_examples=300, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(
            st.sampled_from(["zh-CN", "zh-HK", "ko", "ru-RU", "fa", "pt", "*"]),
            st.sampled_from(["", ";q=1", ";q=0.8", ";q=0.5", ";q=0.1", ";q=0"]),
        ),
        max_size=6,
    )
)
def test_a_zero_weight_range_changes_nothing(ranges: list[tuple[str, str]]) -> None:
    header = ", ".join(tag + weight for tag, weight in ranges)
    plain = negotiate(header, ALL, "en")
    assert negotiate(f"{header}, ar;q=0" if header else "ar;q=0", ALL, "en") == plain
    assert negotiate(f"es;q=0, {header}", ALL, "en") == plain


# -- Babel and Werkzeug, measured (the README's claim) ---------------------------------------

# What each returns today for a header, offered = SHIPPED, no default (None = nothing matched,
# so the app shows its default language). geofence's answer is the "right" column.
DIFFERENTIAL = [
    # header, right, Babel negotiate_locale, Werkzeug best_match
    ("zh-CN", "zh-Hans", None, None),
    ("zh-SG", "zh-Hans", None, None),
    ("zh", "zh-Hans", None, "zh-Hans"),
    ("zh-Hans-CN", "zh-Hans", None, None),
    ("zh-TW", "zh-Hant", None, None),
    ("zh-HK", "zh-Hant", None, None),
    ("zh-MO", "zh-Hant", None, None),
    ("zh-Hant-HK", "zh-Hant", None, None),
    ("zh-HK, en;q=0.5", "zh-Hant", "en", "en"),
    ("zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7", "zh-Hant", "en", "en"),
    ("zh-Hant", "zh-Hant", "zh-Hant", "zh-Hant"),
    ("fa-IR", "fa", "fa", "fa"),
]


@pytest.mark.parametrize(("header", "right", "by_babel", "by_werkzeug"), DIFFERENTIAL)
def test_babel_and_werkzeug_get_chinese_wrong(
    header: str, right: str, by_babel: str | None, by_werkzeug: str | None
) -> None:
    """If a new Babel or Werkzeug fixes these, this fails: update the README's comparison."""
    babel_core = pytest.importorskip("babel.core")
    pytest.importorskip("werkzeug")
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    assert negotiate(header, SHIPPED, "xx") == right
    request = Request(EnvironBuilder(headers=[("Accept-Language", header)]).get_environ())
    assert request.accept_languages.best_match(SHIPPED) == by_werkzeug
    # Babel has no header parser: it gets Werkzeug's list, best first (as Flask-Babel does).
    preferred = [value for value, _ in request.accept_languages]
    assert babel_core.negotiate_locale(preferred, SHIPPED, sep="-") == by_babel
    found = babel_core.Locale.negotiate(preferred, SHIPPED, sep="-")
    assert (None if found is None else canonical(str(found))) == by_babel


def test_werkzeug_answers_bare_chinese_by_the_order_of_the_offer() -> None:
    """The README: Werkzeug's zh-Hans for bare "zh" is the first offered tag starting "zh"."""
    pytest.importorskip("werkzeug")
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    accept = parse_accept_header("zh", LanguageAccept)
    assert accept.best_match(["en", "zh-Hans", "zh-Hant"]) == "zh-Hans"
    assert accept.best_match(["en", "zh-Hant", "zh-Hans"]) == "zh-Hant"
    assert negotiate("zh", ["en", "zh-Hant", "zh-Hans"], "en") == "zh-Hans"


def test_babel_knows_the_script_but_does_not_negotiate_with_it() -> None:
    """Babel's data has the script table (its likely subtags); negotiate_locale ignores it."""
    babel = pytest.importorskip("babel")
    assert babel.Locale.parse("zh_HK").script == "Hant"
    assert babel.Locale.parse("zh_CN").script == "Hans"
    assert babel.core.negotiate_locale(["zh-HK"], SHIPPED, sep="-") is None


# -- Direction -------------------------------------------------------------------------------


def test_rtl_languages() -> None:
    assert frozenset({"ar", "fa"}) == RTL
    assert {tag for tag in SHIPPED if direction(tag) == "rtl"} == {"ar", "fa"}


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("ar", "rtl"),
        ("fa", "rtl"),
        ("AR", "rtl"),
        ("ar-EG", "rtl"),
        ("fa_IR", "rtl"),
        (" fa ", "rtl"),
        ("en", "ltr"),
        ("zh-Hant", "ltr"),
        ("ko", "ltr"),
        ("arn", "ltr"),  # Mapudungun starts with "ar" but is not Arabic
        ("fat", "ltr"),
        ("", "ltr"),
    ],
)
def test_direction(lang: str, expected: str) -> None:
    assert direction(lang) == expected


# -- Translations ----------------------------------------------------------------------------

# Where the English text is the right translation.
SAME_AS_ENGLISH = {("es", "Error %(status)s")}


def test_msgids_are_the_page_words() -> None:
    assert len(MSGIDS) == 16
    assert len(set(MSGIDS)) == 16
    assert MSGIDS[10] == "Error %(status)s"
    assert MSGIDS[4] == (
        "Access for this account is suspended because of repeated requests from a country, "
        "region, or territory where this service is not available."
    )


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_msgid_is_translated(lang: str) -> None:
    gettext_ = translator(lang)
    for msgid in MSGIDS:
        text = gettext_(msgid)
        assert text.strip(), (lang, msgid)
        assert text == text.strip(), (lang, msgid)
        assert ("%(status)s" in text) == ("%(status)s" in msgid), (lang, msgid)
        assert "%" not in text.replace("%(status)s", ""), (lang, msgid)
        if lang == "en":
            assert text == msgid
        elif (lang, msgid) not in SAME_AS_ENGLISH:
            assert text != msgid, (lang, msgid)
    assert gettext_("Error %(status)s") % {"status": 451} != "Error %(status)s"


def test_english_is_the_msgid_and_unknown_is_the_identity() -> None:
    assert translator("en")("Reference") == "Reference"
    assert translator("de")("Reference") == "Reference"
    assert translator("")("Reference") == "Reference"
    assert translator("zh-Hans")("not a msgid") == "not a msgid"


def test_translator_is_loaded_once_and_any_spelling_finds_it() -> None:
    assert translator("zh-Hant") is translator("zh-Hant")
    assert translator("ZH_hant")("Reference") == "參考編號"
    assert translator("zh-hans")("Reference") == "参考编号"


def test_a_broken_catalogue_falls_back_to_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ko" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "ko" / "LC_MESSAGES" / "geofence.mo").write_bytes(b"not a catalogue")
    monkeypatch.setattr(_locale, "LOCALE_DIR", tmp_path)
    monkeypatch.setattr(_locale, "_translators", {})
    with caplog.at_level(logging.WARNING, logger="geofence"):
        assert translator("ko")("Reference") == "Reference"
        assert translator("ru")("Reference") == "Reference"  # missing file
    assert "ko page catalogue cannot be read" in caplog.text
    assert "ru page catalogue cannot be read" in caplog.text


# Characters that exist only in one of the two scripts, among those the page uses.
SIMPLIFIED_ONLY = set("务号资区无错误请联络参编于权时访问该账户条发过几应")
TRADITIONAL_ONLY = set("務號資區無錯誤請聯絡參編於權時訪問該帳戶條發過幾應連線")


def test_simplified_and_traditional_are_distinct() -> None:
    hans, hant = translator("zh-Hans"), translator("zh-Hant")
    for msgid in MSGIDS:
        assert hans(msgid) != hant(msgid), msgid
        assert not set(hans(msgid)) & (TRADITIONAL_ONLY - SIMPLIFIED_ONLY), msgid
        assert not set(hant(msgid)) & (SIMPLIFIED_ONLY - TRADITIONAL_ONLY), msgid


def test_persian_and_arabic_letters() -> None:
    persian, arabic = translator("fa"), translator("ar")
    for msgid in MSGIDS:
        # Persian writes yeh and kaf as U+06CC and U+06A9; Arabic as U+064A and U+0643.
        assert not set(persian(msgid)) & {"\u064a", "\u0643"}, msgid
        assert not set(arabic(msgid)) & {"\u06cc", "\u06a9"}, msgid
        for text in (persian(msgid), arabic(msgid)):
            letters = [char for char in text.replace("%(status)s", "") if char.isalpha()]
            assert all("\u0600" <= char <= "\u06ff" for char in letters), (msgid, text)


def test_russian_and_ukrainian_are_distinct() -> None:
    russian, ukrainian = translator("ru"), translator("uk")
    for msgid in MSGIDS:
        if "%(" not in msgid:
            assert russian(msgid) != ukrainian(msgid), msgid
        assert not set(russian(msgid)) & set("іїєґІЇЄҐ"), msgid
        assert not set(ukrainian(msgid)) & set("ыэёъЫЭЁЪ"), msgid


# -- Catalogue files --------------------------------------------------------------------------


def _po(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "geofence.po"


def test_every_shipped_language_has_a_source_and_a_compiled_catalogue() -> None:
    folders = sorted(path.name for path in LOCALE_DIR.iterdir() if path.is_dir())
    assert folders == sorted(SHIPPED)
    for lang in SHIPPED:
        assert _po(lang).is_file()
        assert _po(lang).with_suffix(".mo").is_file()
        assert _locale.catalogue_path(lang) == _po(lang).with_suffix(".mo")


@pytest.mark.parametrize("lang", SHIPPED)
def test_po_headers_and_msgids(lang: str) -> None:
    entries = compiler.parse_po(_po(lang).read_text(encoding="utf-8"), lang)
    fields = compiler.header_fields(entries)
    assert fields["Language"] == lang.replace("-", "_")
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"].startswith("nplurals=")
    # The plural rule is one gettext can evaluate (it would refuse the catalogue otherwise).
    nplurals = int(fields["Plural-Forms"].split(";")[0].split("=")[1])
    rule = gettext.c2py(fields["Plural-Forms"].split("plural=", 1)[1].rstrip(";"))
    assert {rule(n) for n in range(200)} == set(range(nplurals))
    messages = [entry for entry in entries if entry.msgid]
    assert tuple(entry.msgid for entry in messages) == MSGIDS
    for entry in messages:
        assert entry.translated and "fuzzy" not in entry.flags
        assert ("python-format" in entry.flags) == ("%(" in entry.msgid)


def test_the_template_holds_every_msgid_untranslated() -> None:
    entries = compiler.parse_po((LOCALE_DIR / "geofence.pot").read_text(encoding="utf-8"))
    messages = [entry for entry in entries if entry.msgid]
    assert tuple(entry.msgid for entry in messages) == MSGIDS
    assert all(entry.value == "" for entry in messages)


@pytest.mark.parametrize("lang", SHIPPED)
def test_the_mo_is_what_gettext_reads_from_the_po(lang: str) -> None:
    with _po(lang).with_suffix(".mo").open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    entries = compiler.parse_po(_po(lang).read_text(encoding="utf-8"))
    for entry in entries:
        if entry.msgid:
            assert catalogue.gettext(entry.msgid) == entry.value
    assert catalogue.info()["language"] == lang.replace("-", "_")
    assert catalogue.charset() == "UTF-8"


# -- The compiler ---------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPILER), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_committed_catalogues_are_compiled() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr


def test_check_finds_a_stale_or_missing_mo(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, locale)
    assert _run("--check", "--locale-dir", str(locale)).returncode == 0
    po = locale / "ko" / "LC_MESSAGES" / "geofence.po"
    po.write_text(
        po.read_text(encoding="utf-8").replace('msgstr "참조 번호"', 'msgstr "참조"'),
        encoding="utf-8",
    )
    (locale / "fa" / "LC_MESSAGES" / "geofence.mo").unlink()
    result = _run("--check", "--locale-dir", str(locale))
    assert result.returncode == 1
    assert "ko/LC_MESSAGES/geofence.mo" in result.stderr
    assert "fa/LC_MESSAGES/geofence.mo" in result.stderr
    assert "ru/" not in result.stderr
    # Compiling writes exactly those two, and then the check passes.
    before = (locale / "ru" / "LC_MESSAGES" / "geofence.mo").stat().st_mtime_ns
    result = _run("--locale-dir", str(locale))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(
        ["wrote", "wrote", "locale/fa/LC_MESSAGES/geofence.mo", "locale/ko/LC_MESSAGES/geofence.mo"]
    )
    assert (locale / "ru" / "LC_MESSAGES" / "geofence.mo").stat().st_mtime_ns == before
    assert _run("--check", "--locale-dir", str(locale)).returncode == 0
    with (locale / "ko" / "LC_MESSAGES" / "geofence.mo").open("rb") as mo:
        assert gettext.GNUTranslations(mo).gettext("Reference") == "참조"


def test_a_broken_po_is_refused_with_its_line(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, locale)
    po = locale / "es" / "LC_MESSAGES" / "geofence.po"
    po.write_text(
        po.read_text(encoding="utf-8").replace(
            'msgstr "Error %(status)s"', 'msgstr "Error %(estado)s"'
        ),
        encoding="utf-8",
    )
    result = _run("--locale-dir", str(locale))
    assert result.returncode == 1
    assert "geofence.po:" in result.stderr and "placeholders" in result.stderr


@pytest.mark.parametrize("lang", SHIPPED)
def test_output_is_deterministic(lang: str) -> None:
    first = compiler.build(_po(lang))
    assert compiler.build(_po(lang)) == first
    assert _po(lang).with_suffix(".mo").read_bytes() == first


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
@pytest.mark.parametrize("lang", SHIPPED)
def test_same_bytes_as_gnu_msgfmt(lang: str, tmp_path: Path) -> None:
    out = tmp_path / "gnu.mo"
    subprocess.run(
        ["msgfmt", "--check", "--no-hash", "-o", str(out), str(_po(lang))],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert out.read_bytes() == compiler.build(_po(lang))


PO_EDGE_CASES = r"""# a comment
msgid ""
msgstr ""
"Language: xx\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"
"POT-Creation-Date: 2026-01-01 00:00+0000\n"

#, fuzzy
msgid "fuzzy one"
msgstr "left out"

msgid "untranslated"
msgstr ""

msgid "escapes \"quoted\"\t\\ and\n"
"continued"
msgstr "ÉSCAPES \"Q\"\t\\\n"
"CONTINUED"

msgctxt "menu"
msgid "Open"
msgstr "Ouvrir (menu)"

msgid "Open"
msgstr "Ouvrir"

msgid "one file"
msgid_plural "%(n)s files"
msgstr[0] "un fichier"
msgstr[1] "%(n)s fichiers"

#~ msgid "obsolete"
#~ msgstr "obsolète"
"""


def test_the_parser_and_mo_layout(tmp_path: Path) -> None:
    entries = compiler.parse_po(PO_EDGE_CASES)
    path = tmp_path / "xx.mo"
    path.write_bytes(compiler.compile_mo(entries))
    with path.open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    assert catalogue.gettext("fuzzy one") == "fuzzy one"
    assert catalogue.gettext("untranslated") == "untranslated"
    assert catalogue.gettext('escapes "quoted"\t\\ and\ncontinued') == 'ÉSCAPES "Q"\t\\\nCONTINUED'
    assert catalogue.pgettext("menu", "Open") == "Ouvrir (menu)"
    assert catalogue.gettext("Open") == "Ouvrir"
    assert catalogue.ngettext("one file", "%(n)s files", 1) == "un fichier"
    assert catalogue.ngettext("one file", "%(n)s files", 5) == "%(n)s fichiers"
    assert catalogue.gettext("obsolete") == "obsolete"
    assert "POT-Creation-Date" not in catalogue._catalog[""]  # type: ignore[attr-defined]
    assert catalogue.info()["language"] == "xx"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('msgid "a"\nmsgstr "b\\q"\n', "unknown escape"),
        ('msgid "a"\nmsgstr "b\n', "expected a quoted string"),
        ('msgid "a"\nmsgstr "b"c"\n', "unescaped quote"),
        ('msgid "a"\nmsgstr "b"\nmsgid "a"\nmsgstr "c"\n', "duplicate msgid"),
        ('msgid "a"\nmsgid_plural "b"\n', "msgid without msgstr"),
        ('msgstr "b"\n', "before any msgid"),
        ('"b"\n', "outside any message"),
        ('msgid "a"\nmsgfoo "b"\n', "unknown keyword"),
    ],
)
def test_the_parser_refuses_what_it_would_guess(text: str, error: str) -> None:
    with pytest.raises(compiler.CatalogueError, match=error):
        compiler.parse_po(text, "x.po")


def test_a_header_without_charset_is_refused() -> None:
    entries = compiler.parse_po(
        'msgid ""\nmsgstr "Language: xx\\nPlural-Forms: nplurals=1; plural=0;\\n"\n'
    )
    with pytest.raises(compiler.CatalogueError, match="charset=UTF-8"):
        compiler.check_header(entries, "x.po")
