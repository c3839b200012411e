"""What an engine on the embedded default costs a process: the modules it loads and its RSS.

The child is a fresh interpreter that reads VmRSS before ``import geofence`` and after building
the default engine and deciding once. It runs twice with one bytecode cache (a temporary
PYTHONPYCACHEPREFIX): the first run fills it, the second is measured, as an installed package
with its .pyc files would be (compiling a module costs more memory than loading it).

The constants written out to keep modules off the import path (a hash, a JSON literal, the
country codes, maxminddb's modes) are checked here against what they stand for.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
import types
import unicodedata
from pathlib import Path
from typing import Any

import pytest

# Modules that the default engine must not load: optional extras, the MaxMind reader and the
# ISO tables (needed only by a MaxMind file or a subdivision), and the standard modules that
# geofence imports only when a feature needs them (hashlib also loads OpenSSL's libcrypto).
NOT_LOADED = (
    "maxminddb",
    "pycountry",
    "redis",
    "prometheus_client",
    "opentelemetry",
    "pyarrow",
    "django",
    "flask",
    "starlette",
    "hashlib",
    "_hashlib",
    "json",
    "html.entities",
    "difflib",
    "tomllib",
    "tomli",
    "gettext",
    "pathlib",
    "importlib.metadata",
    "email",
    "zipfile",
    "http",
    "array",
    # geofence._record makes the core's dataclasses without it (it imports inspect, ast, dis)
    "dataclasses",
    "inspect",
    # geofence._logs.LazyLogger imports it only when something is logged
    "logging",
    "traceback",
)
# geofence's own modules that only a feature the default policy lacks needs: a MaxMind file,
# [accounts], an adapter's WSGI helpers and header views (the packages load them lazily).
NOT_LOADED_OWN = (
    "geofence.geoip._mmdb",
    "geofence.geoip._tree",
    "geofence.accounts._memory",
    "geofence.accounts._ledger",
    "geofence.accounts._store",
    "geofence.accounts._uri",
    "geofence.accounts._redis",
    "geofence.http._wsgi",
    "geofence.http._environ",
    "geofence.http._asgi",
    "geofence.replay",
    "geofence.export",
    "geofence.cli",
    "geofence.testing",
)
# Issue 15 asks for <= 6 MB. Measured (bench/import_cost.py, Linux x86-64) before -> after the
# lazy imports: 17.1 -> 8.0 MB on CPython 3.11; then the lazy package exports (geofence._lazy):
# 7.66 -> 7.40 on 3.11, 6.91 -> 6.76 on 3.10, 7.96 -> 7.54 on 3.12, 8.2/8.8 -> 8.0/8.6 on 3.13
# (3.13's processes fall in two groups ~0.6 MB apart, run to run). Then @record instead of
# dataclasses (which imports inspect, ast, dis, tokenize), the lazy logger (logging imports
# traceback, string, linecache), _socket on first use and no math: 6.5 -> 5.3 on 3.10,
# 7.4 -> 5.8 on 3.11, 7.2 -> 5.6 on 3.12, 7.9 -> 5.8 on 3.13 (bench/import_cost.py). What
# remains is the standard library the engine needs (typing, re, datetime, ipaddress,
# threading, enum), iptocc's table
# and geofence's own code (~2 MB). The budget holds every version with room for allocators;
# the module lists above catch smaller regressions, this the heavy ones (maxminddb ~4 MB,
# pycountry ~5 MB, OpenSSL ~3.5 MB).
RSS_BUDGET_KB = 8192  # 8 MB

CHILD = r"""
import sys

def rss():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

already = set(sys.modules)
before = rss()
import geofence
engine = geofence.Engine.from_config({})
decision = engine.decide(geofence.RequestInfo(peer="8.8.8.8"))
after = rss()
loaded = sorted(set(sys.modules) - already)
import json  # only after the second reading
print(json.dumps({"before": before, "after": after, "loaded": loaded,
                  "action": decision.action, "country": decision.country}))
"""


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("pycache")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    # Not the test's working directory: "-c" puts it first on sys.path.
    cwd = tmp_path_factory.mktemp("cwd")
    result: dict[str, Any] = {}
    for _ in range(2):  # the first run fills the bytecode cache
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
    return result


def test_the_default_engine_answers_in_the_child(child: dict[str, Any]) -> None:
    assert (child["action"], child["country"]) == ("allow", "US")


# Modules that only the pure-Python build, or only older versions, load with the default
# engine: _socket reads address text that is not canonical (the compiled build reads the
# canonical forms itself), and before 3.12 the datetime module imports math.
NOT_LOADED_COMPILED = ("_socket",)
NOT_LOADED_SINCE_312 = ("math",)


def test_the_default_engine_loads_no_heavy_module(child: dict[str, Any]) -> None:
    from geofence.hotpath import NATIVE

    loaded = set(child["loaded"])
    if NATIVE is not None:
        assert sorted(loaded.intersection(NOT_LOADED_COMPILED)) == []
    if sys.version_info >= (3, 12):
        assert sorted(loaded.intersection(NOT_LOADED_SINCE_312)) == []
    assert "geofence" in loaded and "iptocc" in loaded  # the child did import them
    assert sorted(loaded.intersection(NOT_LOADED)) == []
    # Nor any submodule of those packages.
    assert [m for m in loaded if m.partition(".")[0] in NOT_LOADED] == []
    own = [m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in NOT_LOADED_OWN)]
    assert sorted(own) == []


@pytest.mark.parametrize("package", ["geofence.http", "geofence.accounts", "geofence.geoip"])
def test_a_lazy_package_still_exports_every_name(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(module, name) is value  # kept after the first look-up
        assert name in dir(module)
        if isinstance(value, (type, types.FunctionType)) and value.__module__.startswith(package):
            assert getattr(importlib.import_module(value.__module__), name) is value
    star: dict[str, Any] = {}
    exec(f"from {package} import *", star)
    assert set(module.__all__) <= set(star)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_the_default_engine_adds_little_resident_memory(child: dict[str, Any]) -> None:
    if child["before"] is None or child["after"] is None:
        pytest.skip("no VmRSS in /proc/self/status on this system")
    added = child["after"] - child["before"]
    assert added <= RSS_BUDGET_KB, f"{added} kB added"


# -- what is written out instead of imported ---------------------------------------------------


def test_the_page_style_hash_is_the_hash_of_the_style() -> None:
    import base64

    from geofence.http._page import PAGE_CSP, STYLE, STYLE_HASH

    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert digest == STYLE_HASH
    assert f"'sha256-{digest}'" in PAGE_CSP


@pytest.mark.parametrize(
    "text", ["", "plain", '<a href="x">it\'s & co</a>', "&amp;", "\u202e<>\"'&", "é中"]
)
def test_escape_html_is_html_escape(text: str) -> None:
    from geofence.http._page import escape_html

    assert escape_html(text) == html.escape(text, quote=True)


def test_the_json_reference_slot_is_its_json_text() -> None:
    from geofence.http import _responses

    assert json.dumps(_responses._REF_SLOT).encode() == _responses._JSON_REF_SLOT


def test_a_json_denial_escapes_a_reference_geofence_did_not_make() -> None:
    import geofence
    from geofence._model import Decision
    from geofence.http._responses import Responder

    policy = geofence.load_policy({"rules": [{"action": "block", "regions": ["CN"]}]})
    decision = Decision(
        action="block", reason="rule", rule="rules[0]", enforced=True, status=451, ref='x"\u00e9'
    )
    response = Responder(policy).denial(decision, "application/json")
    body = json.loads(response.body)
    assert body["error"]["ref"] == 'x"\u00e9'
    assert dict(response.headers)["Content-Length"] == str(len(response.body))


def test_reader_modes_are_maxminddbs() -> None:
    import maxminddb

    from geofence.geoip import MODES

    assert MODES == {
        "auto": maxminddb.MODE_AUTO,
        "mmap_ext": maxminddb.MODE_MMAP_EXT,
        "mmap": maxminddb.MODE_MMAP,
        "memory": maxminddb.MODE_MEMORY,
        "file": maxminddb.MODE_FILE,
    }


def test_the_country_codes_are_pycountrys() -> None:
    import pycountry

    from geofence import _iso3166 as iso

    assert {str(c.alpha_2) for c in pycountry.countries} == iso.ISO_COUNTRIES
    assert iso.countries() == iso.ISO_COUNTRIES | {"XK"}


def test_refs_hash_with_hashlibs_blake2b() -> None:
    import base64

    from geofence._refs import Refs

    key = bytes(range(16))
    text = "203.0.113.7\x00rules[0]\x00rule\x00-"
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=key).digest()
    chars = base64.b32encode(digest)[:10].translate(
        bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    )
    assert (
        Refs(key).make("203.0.113.7", "rules[0]", "rule")
        == f"{chars[:5].decode()}-{chars[5:].decode()}"
    )


def test_control_characters_without_unicodedata_match_it() -> None:
    from geofence.config._loader import _is_control

    sample = [chr(i) for i in range(0x300)] + ["\u200b", "\u2028", "\u2029", "\ufeff", "\U000e0001"]
    for categories in (("Cc",), ("Cc", "Zl", "Zp"), ("Cc", "Cf", "Zl", "Zp")):
        for ch in sample:
            assert _is_control(ch, categories) == (unicodedata.category(ch) in categories), ch


def test_the_catalogue_folder_is_made_on_first_use() -> None:
    from geofence.http import _locale

    assert isinstance(_locale.LOCALE_DIR, Path)
    assert _locale.catalogue_path("ru") == _locale.LOCALE_DIR / "ru" / "LC_MESSAGES" / (
        "geofence.mo"
    )
    assert _locale.catalogue_path("ru").is_file()
    with pytest.raises(AttributeError):
        _locale.NO_SUCH_NAME  # noqa: B018
