"""A real-size GeoIP2-Country database for the benchmarks, built once and cached.

MaxMind's test databases hold a few hundred networks; a real GeoIP2-Country file holds several
hundred thousand, and both the search-tree depth and the record size change what one lookup
costs. This module writes a file of that size with ``mmdb-writer``:

- IPv4: the unicast space (reserved ranges left out) is cut into ~300,000 aligned blocks, /8 to
  /24, by splitting blocks at random (fixed seed), which gives the long tail of /24s and the few
  big blocks of real data. Each block gets the country ``iptocc`` (RIR data) gives its first
  address; blocks iptocc knows nothing about are left out (``not found``, as in real files).
- IPv6: ~60,000 networks, /32s sampled from the five RIR /12s and kept when iptocc knows them,
  a quarter of them cut into /36 to /48 pieces.
- Records have the shape and size of real GeoIP2-Country records (continent, country and
  registered_country, each with a geoname_id and names in the eight GeoIP2 languages). The
  names, geoname ids and continents are synthetic: the file says nothing true about geography
  beyond what iptocc says.

The output is deterministic for a given iptocc data release and mmdb-writer version, which are
part of the file name, so a new release builds a new file and stale ones are removed.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
DATABASE_TYPE = "GeoIP2-Country"
LANGUAGES = ["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"]
DESCRIPTION = "geofence benchmark database (synthetic records, iptocc countries)"
BUILD_EPOCH = 1_700_000_000  # fixed, so that a rebuild gives the same bytes
# Bump when the generator changes: the file name changes with it.
GENERATOR = 1
SEED = 20240709
# Probability that a block of this size is split again; tuned for ~300k IPv4 networks.
SPLIT_BIG = 0.97  # /8 to /11: real data has almost no blocks that big
SPLIT = 0.7  # /12 to /23
V6_CANDIDATES = 500_000
V6_BLOCKS = (0x2400, 0x2600, 0x2800, 0x2A00, 0x2C00)  # APNIC, ARIN, LACNIC, RIPE, AFRINIC /12s

# RFC 6890 special-purpose IPv4 blocks (all /24-aligned): never in a GeoIP database.
_RESERVED_V4 = tuple(
    (start, start + (1 << (32 - prefix)))
    for start, prefix in (
        (0x00000000, 8),
        (0x0A000000, 8),
        (0x64400000, 10),
        (0x7F000000, 8),
        (0xA9FE0000, 16),
        (0xAC100000, 12),
        (0xC0000000, 24),
        (0xC0000200, 24),
        (0xC0586300, 24),
        (0xC0A80000, 16),
        (0xC6120000, 15),
        (0xC6336400, 24),
        (0xCB007100, 24),
    )
)
_EU = frozenset(
    ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"),
) | frozenset(("IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"))
_CONTINENTS = (
    ("AF", "Africa"),
    ("AN", "Antarctica"),
    ("AS", "Asia"),
    ("EU", "Europe"),
    ("NA", "North America"),
    ("OC", "Oceania"),
    ("SA", "South America"),
)

Network = tuple[int, int, int]  # (version, first address as an integer, prefix length)


def path() -> Path:
    """Where the database for this iptocc / mmdb-writer pair lives (it may not exist yet)."""
    key = f"{GENERATOR}:{SEED}:{version('iptocc')}:{version('mmdb-writer')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return DATA / f"GeoIP2-Country-bench-{digest}.mmdb"


def ensure(log: Callable[[str], None] = print) -> tuple[Path, float | None]:
    """The cached database, built first if missing: (path, build seconds or None if cached)."""
    target = path()
    if target.exists():
        return target, None
    log(f"building a real-size {DATABASE_TYPE} database (once; cached as {target.name}) ...")
    started = time.perf_counter()
    build(target, log)
    seconds = time.perf_counter() - started
    for stale in DATA.glob("GeoIP2-Country-bench-*.mmdb"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target, seconds


def build(target: Path, log: Callable[[str], None] = print) -> None:
    from iptocc import country_code
    from mmdb_writer import MMDBWriter
    from netaddr import IPNetwork, IPSet

    class Writer(MMDBWriter):
        def _build_meta(self) -> dict[str, Any]:
            meta: dict[str, Any] = super()._build_meta()
            meta["build_epoch"] = BUILD_EPOCH
            return meta

    rng = random.Random(SEED)
    v4 = list(_ipv4_blocks(rng))
    v6 = list(_ipv6_blocks(rng, country_code))
    codes = country_code([_text(n) for n in v4 + v6])
    records = _Records(rng)
    writer = Writer(
        ip_version=6,
        database_type=DATABASE_TYPE,
        languages=LANGUAGES,
        # Real files describe themselves in every language they name.
        description=dict.fromkeys(LANGUAGES, DESCRIPTION),
        ipv4_compatible=True,
    )
    counts = {4: 0, 6: 0}
    for network, code in zip(v4 + v6, codes, strict=True):
        record = records.get(code)
        if record is None:
            continue
        ip_version, value, prefix = network
        writer.insert_network(IPSet([IPNetwork((value, prefix), version=ip_version)]), record)
        counts[ip_version] += 1
    DATA.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        writer.to_db_file(str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log(f"  {counts[4]:,} IPv4 + {counts[6]:,} IPv6 networks, {target.stat().st_size / 1e6:.1f} MB")


def _ipv4_blocks(rng: random.Random) -> Iterator[Network]:
    """Aligned blocks covering the unicast space minus reserved ranges, in address order."""
    draw = rng.random
    stack = [(first << 24, 8) for first in range(223, 0, -1)]
    while stack:
        start, prefix = stack.pop()
        end = start + (1 << (32 - prefix))
        touched = [r for r in _RESERVED_V4 if r[0] < end and start < r[1]]
        if any(low <= start and end <= high for low, high in touched):
            continue
        chance = SPLIT_BIG if prefix < 12 else SPLIT
        if touched or (prefix < 24 and draw() < chance):
            half = 1 << (31 - prefix)
            stack.append((start + half, prefix + 1))
            stack.append((start, prefix + 1))
        else:
            yield 4, start, prefix


def _ipv6_blocks(
    rng: random.Random, country_code: Callable[[list[str]], list[str | None]]
) -> Iterator[Network]:
    candidates: set[int] = set()
    while len(candidates) < V6_CANDIDATES:
        candidates.add((rng.choice(V6_BLOCKS) << 16) | rng.getrandbits(20))
    ordered = sorted(candidates)
    found = country_code([_text((6, top << 96, 32)) for top in ordered])
    for top, code in zip(ordered, found, strict=True):
        if code is None:
            continue
        base = top << 96
        if rng.random() >= 0.25:
            yield 6, base, 32
            continue
        prefix = rng.choice((36, 40, 44, 48))
        pieces = rng.sample(range(1 << (prefix - 32)), min(1 << (prefix - 32), rng.randint(2, 12)))
        for piece in sorted(pieces):
            yield 6, base | (piece << (128 - prefix)), prefix


def _text(network: Network) -> str:
    ip_version, value, _ = network
    if ip_version == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    groups = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    return ":".join(f"{g:x}" for g in groups)


class _Records:
    """One record per (country, registered country) pair, shaped like GeoIP2-Country's."""

    def __init__(self, rng: random.Random) -> None:
        import pycountry

        self._rng = rng
        self._names = {str(c.alpha_2): str(c.name) for c in pycountry.countries}
        self._codes = sorted(self._names)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, code: str | None) -> dict[str, Any] | None:
        if code is None or code not in self._names:
            return None  # not found, or an RIR pseudo-code ("EU", "AP"): left out
        # A few networks are registered to another country than where they are used.
        registered = code if self._rng.random() >= 0.03 else self._rng.choice(self._codes)
        key = (code, registered)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = {
                "continent": _continent(code),
                "country": self._country(code),
                "registered_country": self._country(registered),
            }
        return record

    def _country(self, code: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "geoname_id": 1_000_000 + zlib.crc32(code.encode()) % 9_000_000,
            "iso_code": code,
            "names": _names(self._names[code]),
        }
        if code in _EU:
            entry["is_in_european_union"] = True
        return entry


def _continent(code: str) -> dict[str, Any]:
    continent, name = _CONTINENTS[zlib.crc32(code.encode()) % len(_CONTINENTS)]
    return {"code": continent, "geoname_id": 6_255_140 + ord(continent[0]), "names": _names(name)}


def _names(english: str) -> dict[str, str]:
    """Eight names of realistic length and script; only the English one is real."""
    seed = zlib.crc32(english.encode())

    def script(base: int, span: int, length: int) -> str:
        return "".join(chr(base + (seed >> i) % span) for i in range(length))

    latin = english.split(",", 1)[0]
    return {
        "de": latin + "ien" if len(latin) < 8 else latin,
        "en": english,
        "es": latin[::-1].title(),
        "fr": latin.upper()[:1] + latin[1:].replace("a", "e"),
        "ja": script(0x30A1, 80, 3 + len(latin) % 5),
        "pt-BR": latin.replace("y", "i"),
        "ru": script(0x0410, 64, max(4, len(latin))),
        "zh-CN": script(0x4E00, 2000, 2 + len(latin) % 3),
    }


if __name__ == "__main__":
    built, took = ensure()
    print(built, "(cached)" if took is None else f"built in {took:.1f} s")
