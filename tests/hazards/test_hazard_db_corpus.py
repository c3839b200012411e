"""The database fault corpus at the engine level, in every reader mode.

Every file of MaxMind's bad-data, the broken test-data files, the same corrupt files
disguised as GeoIP2-City databases (so that they get past the type check and reach the
search-tree walk and the lookups), and what people really end up with (empty, a directory,
still gzipped, truncated, the wrong database, random damage) is loaded with
``Engine.from_config`` in each reader mode. Each must give ``geofence.ConfigError`` for
``geoip.country_db``, or load and then answer every address with a valid decision
(``db_error`` where a lookup fails), and the outcome must be the same in every mode.

The loads run in one child process (hazard_corpus_probe.py): a crash or a hang there fails
these tests instead of killing the session.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from tests_support import CORRUPT_FILES, reader_modes

from geofence.geoip import iso_countries

Encoder = pytest.importorskip("mmdb_writer").Encoder

HERE = Path(__file__).parent
DATA = HERE.parent / "data"
TEST_DATA = DATA / "maxmind" / "test-data"
FIXTURES = DATA / "fixtures"
CITY = TEST_DATA / "GeoIP2-City-Test.mmdb"

MODES = reader_modes()
CORRUPT = CORRUPT_FILES
METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"

# Addresses from every part of the test databases' trees, both families, and edge forms.
ADDRESSES = [
    "1.0.0.1",
    "1.1.1.1",
    "1.1.1.3",
    "1.1.1.16",
    "1.1.1.32",
    "2.125.160.216",
    "81.2.69.142",
    "89.160.20.112",
    "128.128.128.128",
    "175.16.199.1",
    "202.196.224.1",
    "214.1.1.1",
    "216.160.83.56",
    "223.255.255.254",
    "255.255.255.254",
    "0.0.0.0",
    "10.1.2.3",
    "::ffff:81.2.69.142",
    "2002:5102:458e::1",  # 6to4 for 81.2.69.142
    "2a02:d0c0::1",
    "2a02:d2c0::1",
    "2001:4860::1",
    "2001:db8::1",
    "fe80::1",
    "2c0f:ffff:ffff::1",
]
# Every outcome is distinguishable: 451 a rule, 403 no country, 503 a failed lookup.
POLICY: dict[str, Any] = {
    "on_error": "block",
    "allow_private": False,
    "rules": [
        {"name": "cn", "action": "block", "regions": ["CN"]},
        {"name": "gb-eng", "action": "warn", "regions": ["GB-ENG"]},
        {"name": "unknown", "action": "block", "regions": ["unknown"], "status": 403},
    ],
}


def disguise(path: Path) -> bytes | None:
    """``path`` with its metadata rewritten to say GeoIP2-City; None if it has none to read.

    The search tree and data section are untouched, so whatever is corrupt in them now gets
    past the database-type check and must be caught by the load-time walk or per lookup.
    """
    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_MEMORY)
        meta = reader.metadata()
        fields = {
            "binary_format_major_version": meta.binary_format_major_version,
            "binary_format_minor_version": meta.binary_format_minor_version,
            "build_epoch": meta.build_epoch,
            "database_type": "GeoIP2-City",
            "description": {"en": "disguised"},
            "ip_version": meta.ip_version,
            "languages": ["en"],
            "node_count": meta.node_count,
            "record_size": meta.record_size,
        }
        encoded = Encoder(cache=False).encode_meta(fields)
    except Exception:
        return None
    data = path.read_bytes()
    at = data.rfind(METADATA_MARKER)
    return data[: at + len(METADATA_MARKER)] + encoded


def build_corpus(folder: Path) -> dict[str, str]:
    files: dict[str, str] = {}

    def add(name: str, content: bytes) -> None:
        path = folder / name
        path.write_bytes(content)
        files[name] = str(path)

    for path in CORRUPT:
        files[path.name] = str(path)
        disguised = disguise(path)
        if disguised is not None:
            add(f"disguised-{path.name}", disguised)
    city = CITY.read_bytes()
    marker = city.rfind(METADATA_MARKER)
    add("empty.mmdb", b"")
    (folder / "directory.mmdb").mkdir()
    files["directory.mmdb"] = str(folder / "directory.mmdb")
    os.mkfifo(folder / "fifo.mmdb")  # opening it for reading would block forever
    files["fifo.mmdb"] = str(folder / "fifo.mmdb")
    os.symlink(folder / "nowhere", folder / "dangling.mmdb")
    files["dangling.mmdb"] = str(folder / "dangling.mmdb")
    add("gzip.mmdb", gzip.compress(city))
    add("html.mmdb", b"<html><body>403 Forbidden</body></html>\n")
    add("zeros.mmdb", bytes(len(city)))
    add("random.mmdb", random.Random(7).randbytes(len(city)))
    for cut in (1, 16, len(city) // 3, len(city) // 2, marker, marker + 5, len(city) - 1):
        add(f"truncated-{cut}.mmdb", city[:cut])
    add("metadata-only.mmdb", city[marker:])
    add("trailing-junk.mmdb", city + b"\x00junk" * 10)
    add("two-markers.mmdb", city + city[marker:])  # the last metadata wins
    for name in ("GeoLite2-ASN-Test.mmdb", "GeoIP2-Anonymous-IP-Test.mmdb"):
        files[f"wrong-type-{name}"] = str(TEST_DATA / name)
    files["wrong-type-ASN-with-countries.mmdb"] = str(FIXTURES / "GeoLite2-ASN-with-countries.mmdb")
    # Loads, but some records are malformed: those addresses must give db_error.
    files["bad-records-GeoIP2-City.mmdb"] = str(FIXTURES / "GeoIP2-City-bad-record.mmdb")
    rng = random.Random(20240709)
    for n in range(12):
        damaged = bytearray(city)
        for _ in range(rng.randrange(1, 6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        add(f"damaged-{n}.mmdb", bytes(damaged))
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def outcomes(corpus: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec = tmp_path_factory.mktemp("probe") / "corpus.json"
    spec.write_text(
        json.dumps({"files": corpus, "modes": MODES, "addresses": ADDRESSES, "policy": POLICY})
    )
    result = subprocess.run(
        [sys.executable, str(HERE / "hazard_corpus_probe.py"), str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = result.stderr.strip().splitlines()[-1:] or ["nothing"]
    assert result.returncode == 0, f"the probe died ({result.returncode}) after: {last}"
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def corpus_ids() -> list[str]:
    # The ids are known before the corpus is built: the fixture must produce exactly these.
    names = [p.name for p in CORRUPT]
    names += [f"disguised-{p.name}" for p in CORRUPT if disguise(p) is not None]
    city_size = CITY.stat().st_size
    marker = CITY.read_bytes().rfind(METADATA_MARKER)
    names += ["empty.mmdb", "directory.mmdb", "fifo.mmdb", "dangling.mmdb", "gzip.mmdb"]
    names += ["html.mmdb", "zeros.mmdb", "random.mmdb"]
    cuts = (1, 16, city_size // 3, city_size // 2, marker, marker + 5, city_size - 1)
    names += [f"truncated-{cut}.mmdb" for cut in cuts]
    names += ["metadata-only.mmdb", "trailing-junk.mmdb", "two-markers.mmdb"]
    names += ["wrong-type-GeoLite2-ASN-Test.mmdb", "wrong-type-GeoIP2-Anonymous-IP-Test.mmdb"]
    names += ["wrong-type-ASN-with-countries.mmdb", "bad-records-GeoIP2-City.mmdb"]
    names += [f"damaged-{n}.mmdb" for n in range(12)]
    return names


def unsafe(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")]


def check_decision(row: list[Any], address: str) -> None:
    """A decision the policy could have given, whatever the database said."""
    action, enforced, reason, rule, client_ip, country, subdivisions, status = row
    assert enforced is True, row
    if reason == "db_error":
        assert (action, status, country, rule) == ("block", 503, None, None), row
        assert client_ip is not None, row
        return
    if country is not None:
        assert country in iso_countries(), row
        assert all(code.startswith(f"{country}-") for code in subdivisions), row
    else:
        assert subdivisions == [], row
    # The policy applied to what the database said (0.0.0.0 has no address to look up).
    expected: tuple[str, str, str | None, int | None]
    if country is None:
        expected = ("block", "rule", "unknown", 403)
    elif country == "CN":
        expected = ("block", "rule", "cn", 451)
    elif "GB-ENG" in subdivisions:
        expected = ("warn", "rule", "gb-eng", None)
    else:
        expected = ("allow", "default", None, None)
    assert (action, reason, rule, status) == expected, (address, row)
    assert (client_ip is None) is (address == "0.0.0.0"), (address, row)


def test_corpus_ids_match_the_corpus(corpus: dict[str, str]) -> None:
    assert sorted(corpus) == sorted(corpus_ids())


@pytest.mark.parametrize("name", corpus_ids())
def test_fault_corpus(name: str, corpus: dict[str, str], outcomes: dict[str, Any]) -> None:
    per_mode = outcomes[name]
    assert set(per_mode) == set(MODES)
    for mode, outcome in per_mode.items():
        assert outcome["outcome"] != "raised", (mode, outcome)
        if outcome["outcome"] == "config_error":
            assert outcome["key"] == "geoip.country_db", (mode, outcome)
            assert corpus[name] in outcome["message"], (mode, outcome)
            assert unsafe(outcome["message"]) == [], (mode, outcome)
        else:
            assert outcome["stable"], mode  # a decision does not change when cached
            for address, row in zip(ADDRESSES, outcome["decisions"], strict=True):
                check_decision(row, address)
    # The same outcome in every mode: refused everywhere, or the same decisions everywhere.
    kinds = {mode: outcome["outcome"] for mode, outcome in per_mode.items()}
    assert len(set(kinds.values())) == 1, kinds
    if kinds[MODES[0]] == "loaded":
        reference = per_mode[MODES[0]]["decisions"]
        for mode, outcome in per_mode.items():
            assert outcome["decisions"] == reference, mode


def test_the_corpus_reaches_both_outcomes(outcomes: dict[str, Any]) -> None:
    """The corpus is not all refusals: some corrupt files load and fail per lookup."""
    loaded = {
        name for name, per_mode in outcomes.items() if per_mode["auto"]["outcome"] == "loaded"
    }
    refused = set(outcomes) - loaded
    assert "bad-records-GeoIP2-City.mmdb" in loaded
    db_errors = [
        address
        for address, row in zip(
            ADDRESSES, outcomes["bad-records-GeoIP2-City.mmdb"]["auto"]["decisions"], strict=True
        )
        if row[2] == "db_error"
    ]
    assert "216.160.83.56" in db_errors
    assert len(refused) > 40
    assert any(name.startswith("disguised-") for name in loaded)
