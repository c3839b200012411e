"""find(): the search tree walked by geofence, checked against the maxminddb reader's lookup.

``lookup(text)`` is the reader's answer (a raw ``reader.get`` plus the record decoder);
``find(ip)`` walks geofence's copy of the tree and decodes each data record once. They must
agree on every address (answer, or DatabaseError), in every reader mode, on every database
geofence accepts, at every network boundary, at every record size, and on damaged trees.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from tests_support import CORRUPT_FILES, reader_modes

from geofence._errors import ConfigError, DatabaseError
from geofence.clientip._addresses import IP, parse_ip
from geofence.geoip import (
    ANONYMOUS,
    COUNTRY,
    NOT_FOUND,
    EmbeddedCountryDB,
    GeoRecord,
    Kind,
    Reloading,
    has_extension,
    open_mmdb,
)
from geofence.geoip import MODES as READER_MODES
from geofence.geoip import _mmdb as mmdb  # its module settings are patched in some tests
from geofence.geoip import _tree as mmdbtree  # the search tree's own pieces, tested directly

DATA = Path(__file__).parent.parent / "data"
TEST_DATA = DATA / "maxmind" / "test-data"
FIXTURES = DATA / "fixtures"
CITY = TEST_DATA / "GeoIP2-City-Test.mmdb"
BENCH = sorted((Path(__file__).parents[2] / "bench" / "data").glob("GeoIP2-Country-bench-*.mmdb"))
MODES = reader_modes()
METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"

# Any database type, records decoded as country records (a non-map record is DatabaseError).
ANY_TYPE: Kind[GeoRecord] = Kind(
    key="geoip.country_db",
    wants="anything",
    subdivisions=lambda database_type: True,
    decoder=lambda decoder: decoder.country,
    empty=NOT_FOUND,
)
DATABASES: list[tuple[Path, Kind[Any]]] = [
    (TEST_DATA / "GeoIP2-City-Test.mmdb", COUNTRY),
    (TEST_DATA / "GeoIP2-Country-Test.mmdb", COUNTRY),
    (TEST_DATA / "GeoIP2-Enterprise-Test.mmdb", COUNTRY),
    (TEST_DATA / "GeoLite2-City-Test.mmdb", COUNTRY),
    (TEST_DATA / "GeoLite2-Country-Test.mmdb", COUNTRY),
    (TEST_DATA / "GeoIP2-Anonymous-IP-Test.mmdb", ANONYMOUS),
    (FIXTURES / "GeoIP2-City-UA.mmdb", COUNTRY),
    (FIXTURES / "GeoIP2-City-IPv4-only.mmdb", COUNTRY),
    (FIXTURES / "GeoIP2-City-bad-record.mmdb", COUNTRY),
    (FIXTURES / "GeoIP2-City-pseudo-codes.mmdb", COUNTRY),
    (FIXTURES / "GeoIP2-Anonymous-IP-bad-record.mmdb", ANONYMOUS),
    # Refused as country databases, but their trees are worth walking: an IPv4-only tree,
    # and an IPv6 tree in which every IPv4 address ends on one record before the 96th bit.
    (TEST_DATA / "MaxMind-DB-test-ipv4-24.mmdb", ANY_TYPE),
    (TEST_DATA / "MaxMind-DB-no-ipv4-search-tree.mmdb", ANY_TYPE),
    (FIXTURES / "GeoLite2-ASN-with-countries.mmdb", ANY_TYPE),
]


def open_db(path: Path | str, kind: Kind[Any] = COUNTRY, mode: str = "auto") -> Any:
    return open_mmdb(str(path), kind, READER_MODES[mode])


def found(db: Any, ip: IP) -> object:
    """What find() gives: an answer, or DatabaseError."""
    try:
        return db.find(ip)
    except DatabaseError:
        return DatabaseError


def looked_up(db: Any, ip: IP) -> object:
    """What lookup() gives, through the maxminddb reader."""
    try:
        return db.lookup(ip.text)
    except DatabaseError:
        return DatabaseError


def ip_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> IP:
    ip = parse_ip(str(address))
    assert ip is not None, address
    return ip


def boundaries(path: Path | str) -> Iterator[IP]:
    """The first and last address of every leaf of the tree (found or not), and neighbours.

    The tree is walked with the pure-Python reader's node reads; a node seen before (the
    IPv4 subtree is reachable from several IPv6 prefixes) is not walked again.
    """
    reader = maxminddb.open_database(str(path), maxminddb.MODE_MEMORY)
    meta = reader.metadata()
    bits = 128 if meta.ip_version == 6 else 32
    make = ipaddress.IPv6Address if bits == 128 else ipaddress.IPv4Address
    seen = set()
    pending = [(0, 0, 0)]  # node, depth, prefix value
    try:
        while pending:
            node, depth, prefix = pending.pop()
            if node < meta.node_count and depth < bits:
                if node in seen:
                    continue
                seen.add(node)
                for bit in (0, 1):
                    pending.append((reader._read_node(node, bit), depth + 1, prefix << 1 | bit))
                continue
            first = prefix << (bits - depth)
            last = first + (1 << (bits - depth)) - 1
            for value in {max(first - 1, 0), first, last, min(last + 1, 2**bits - 1)}:
                yield ip_of(make(value))
    finally:
        reader.close()


def random_ips(seed: int, count: int, ipv6: bool = True) -> list[IP]:
    rng = random.Random(seed)
    ips = []
    for n in range(count):
        if ipv6 and n % 2:
            # Mostly global unicast, where the databases have networks; some anywhere.
            high = 0x2000 | rng.getrandbits(13) if n % 6 else rng.getrandbits(16)
            value = high << 112 | rng.getrandbits(112)
            ips.append(ip_of(ipaddress.IPv6Address(value)))
        else:
            ips.append(ip_of(ipaddress.IPv4Address(rng.getrandbits(32))))
    return ips


def assert_find_is_lookup(path: Path | str, kind: Kind[Any], mode: str, ips: list[IP]) -> int:
    """find() on one database object and lookup() on another agree on every address.

    Returns how many addresses reached a data record (an answer or a DatabaseError), so a
    caller can check that the addresses meant something.
    """
    walked = open_db(path, kind, mode)
    assert walked.tree is not None
    reference = open_db(path, kind, mode)
    answers = 0
    for ip in ips:
        expected = looked_up(reference, ip)
        assert found(walked, ip) == expected, (ip, mode)
        answers += expected != kind.empty
    # Asked again, now from the memo.
    for ip in ips[:200]:
        assert found(walked, ip) == looked_up(reference, ip), (ip, mode)
    return answers


# -- equality with the reader ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "kind"), DATABASES, ids=[p.name for p, _ in DATABASES])
def test_find_is_lookup_on_every_test_database(path: Path, kind: Any, mode: str) -> None:
    ips = [*boundaries(path), *random_ips(len(path.name), 600)]
    ips += [ip_of(text) for text in ("::ffff:81.2.69.142", "2002:5102:458e::1", "::1", "::")]
    assert assert_find_is_lookup(path, kind, mode, ips) > 0


def resized(
    data: bytes, record_size: int, changes: dict[tuple[int, int], int] | None = None
) -> bytes:
    """The same database with its search tree written at ``record_size`` bits per record.

    Data pointers count from the end of the tree in nodes, so they stay valid. ``changes``
    overwrites records: {(node, 0 left / 1 right): value}.
    """
    from mmdb_writer import Encoder

    source = _reader_for(data)
    meta = source.metadata()
    count = meta.node_count
    tree = bytearray()
    for node in range(count):
        left = source._read_node(node, 0)
        right = source._read_node(node, 1)
        left = (changes or {}).get((node, 0), left)
        right = (changes or {}).get((node, 1), right)
        if record_size == 24:
            tree += left.to_bytes(3, "big") + right.to_bytes(3, "big")
        elif record_size == 28:
            middle = (left >> 24) << 4 | right >> 24
            tree += (left & 0xFFFFFF).to_bytes(3, "big") + bytes([middle])
            tree += (right & 0xFFFFFF).to_bytes(3, "big")
        else:
            tree += left.to_bytes(4, "big") + right.to_bytes(4, "big")
    fields = {
        "binary_format_major_version": meta.binary_format_major_version,
        "binary_format_minor_version": meta.binary_format_minor_version,
        "build_epoch": meta.build_epoch,
        "database_type": meta.database_type,
        "description": meta.description,
        "ip_version": meta.ip_version,
        "languages": meta.languages,
        "node_count": count,
        "record_size": record_size,
    }
    old_tree = count * meta.record_size // 4
    marker = data.rfind(METADATA_MARKER)
    rest = data[old_tree:marker]  # the separator and the data section
    return bytes(tree) + rest + METADATA_MARKER + Encoder(cache=False).encode_meta(fields)


def _reader_for(data: bytes) -> Any:
    import io

    buffer = io.BytesIO(data)
    buffer.name = "<memory>"  # type: ignore[attr-defined]  # maxminddb 2.6 requires a name
    return maxminddb.open_database(buffer, maxminddb.MODE_FD)  # type: ignore[arg-type]


@pytest.mark.parametrize("record_size", [24, 28, 32])
def test_every_record_size(tmp_path: Path, record_size: int) -> None:
    path = tmp_path / "GeoIP2-City.mmdb"
    path.write_bytes(resized(CITY.read_bytes(), record_size))
    assert maxminddb.open_database(str(path)).metadata().record_size == record_size
    ips = [*boundaries(CITY), *random_ips(3, 400)]
    original = open_db(CITY)
    db = open_db(path)
    assert db.tree is not None
    for ip in ips:
        assert found(db, ip) == looked_up(original, ip), ip
    for mode in MODES:
        assert_find_is_lookup(path, COUNTRY, mode, ips[::7])


@pytest.fixture(scope="module")
def mid_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A City database with thousands of random networks, many longer and shorter than /16
    (the first table's stride), in both families, with subdivisions."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    rng = random.Random(20240801)
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    countries = ["GB", "US", "DE", "FR", "UA", "CN", "JP", "BR", "ZA", "IN"]
    records = [
        {"country": {"iso_code": code}, "subdivisions": [{"iso_code": str(n)}]}
        for code in countries
        for n in range(1, 8)
    ] + [{"continent": {"code": "EU"}}]
    for n in range(1500):
        if n % 3:
            length = rng.randint(8, 32)
            network = ipaddress.IPv4Network((rng.getrandbits(32), length), strict=False)
        else:
            length = rng.randint(16, 64)
            value = (0x2000 | rng.getrandbits(13)) << 112 | rng.getrandbits(112)
            network = ipaddress.IPv6Network((value, length), strict=False)
        writer.insert_network(IPSet([str(network)]), rng.choice(records))
    path = tmp_path_factory.mktemp("mid") / "GeoIP2-City-mid.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def mid_size_ips(mid_size: Path) -> list[IP]:
    return random.Random(2).sample(list(boundaries(mid_size)), 8000) + random_ips(4, 1000)


@pytest.mark.parametrize("mode", MODES)
def test_find_is_lookup_on_a_mid_size_database(
    mid_size: Path, mid_size_ips: list[IP], mode: str
) -> None:
    # Fewer with the pure-Python reader, which is slow.
    ips = mid_size_ips if mode in ("auto", "mmap_ext") else mid_size_ips[::6]
    assert assert_find_is_lookup(mid_size, COUNTRY, mode, ips) > len(ips) // 10


@pytest.mark.skipif(not BENCH, reason="no real-size database built (python bench/run.py)")
def test_find_is_lookup_on_the_real_size_database() -> None:
    path = BENCH[-1]
    ips = random_ips(5, 20_000)
    # Whole neighbourhoods too: every address of a few /24s crosses many small networks.
    rng = random.Random(6)
    for _ in range(8):
        base = rng.getrandbits(24) << 8
        ips += [ip_of(ipaddress.IPv4Address(base + n)) for n in range(256)]
    assert assert_find_is_lookup(path, COUNTRY, "auto", ips) > 5000


# -- damaged trees: the C reader's verdicts in every mode ------------------------------------


def path_to(path: Path | str, address: str) -> list[tuple[int, int]]:
    """The (node, bit) records the reader's walk for ``address`` reads, root first."""
    reader = maxminddb.open_database(str(path), maxminddb.MODE_MEMORY)
    meta = reader.metadata()
    packed = ipaddress.ip_address(address).packed
    bits = len(packed) * 8
    node = reader._ipv4_start if bits == 32 and meta.ip_version == 6 else 0
    steps = []
    for i in range(bits):
        if node >= meta.node_count:
            break
        bit = packed[i >> 3] >> (7 - i % 8) & 1
        steps.append((node, bit))
        node = reader._read_node(node, bit)
    reader.close()
    return steps


# Far enough into the IPv4 space that the load-time walk (64 networks) does not get there.
DAMAGED = "175.16.199.1"


Damage = Callable[[int, int, int, int], dict[tuple[int, int], int]]


def damaged(tmp_path: Path, name: str, damage: Damage) -> Path:
    """City with records of the last node on the way to DAMAGED overwritten:
    damage(node, bit taken, node_count, file size) -> {(node, bit): value}."""
    data = CITY.read_bytes()
    node, bit = path_to(CITY, DAMAGED)[-1]
    count = _reader_for(data).metadata().node_count
    path = tmp_path / f"GeoIP2-City-{name}.mmdb"
    path.write_bytes(resized(data, 28, damage(node, bit, count, len(data))))
    return path


TREE_DAMAGE: dict[str, Damage] = {
    "separator": lambda node, bit, count, size: {(node, bit): count + 1},
    "separator-end": lambda node, bit, count, size: {(node, bit): count + 15},
    "past-the-end": lambda node, bit, count, size: {(node, bit): count + size},
    "far-past-the-end": lambda node, bit, count, size: {(node, bit): 0xFFFFFFF},
    # Both ways lead back to the node itself: the walk runs out of address bits on a node.
    "loop": lambda node, bit, count, size: {(node, 0): node, (node, 1): node},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("damage", sorted(TREE_DAMAGE))
def test_a_damaged_record_is_a_database_error_in_every_mode(
    tmp_path: Path, damage: str, mode: str
) -> None:
    path = damaged(tmp_path, damage, TREE_DAMAGE[damage])
    db = open_db(path, COUNTRY, mode)
    assert db.tree is not None
    for _ in range(2):  # never memoised
        with pytest.raises(DatabaseError, match=r"175\.16\.199\.1"):
            db.find(ip_of(DAMAGED))
    # The rest of the tree still answers.
    assert db.find(ip_of("81.2.69.142")) == GeoRecord(True, "GB", ("GB-ENG",))
    if has_extension():  # the C reader is the reference: it refuses these too
        reference = open_db(path, COUNTRY, "mmap_ext")
        with pytest.raises(DatabaseError):
            reference.lookup(DAMAGED)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["root", "first", "self", "parent"])
def test_a_record_leading_back_up_the_tree(tmp_path: Path, target: str, mode: str) -> None:
    """The walk goes on from there with the address's remaining bits, as the readers do."""
    steps = path_to(CITY, DAMAGED)
    values = {"root": 0, "first": 1, "self": steps[-1][0], "parent": steps[-2][0]}
    path = damaged(tmp_path, target, lambda node, bit, c, s: {(node, bit): values[target]})
    db = open_db(path, COUNTRY, mode)
    reference = open_db(path, COUNTRY, "mmap_ext" if has_extension() else mode)
    base = ip_of(DAMAGED).value & ~0xFFFF
    for ip in [
        ip_of(DAMAGED),
        *(ip_of(ipaddress.IPv4Address(base + n)) for n in range(0, 65536, 97)),
    ]:
        assert found(db, ip) == looked_up(reference, ip), ip


@pytest.mark.parametrize("mode", MODES)
def test_a_record_marked_empty_is_not_found(tmp_path: Path, mode: str) -> None:
    path = damaged(tmp_path, "empty", lambda node, bit, count, size: {(node, bit): count})
    db = open_db(path, COUNTRY, mode)
    assert db.find(ip_of(DAMAGED)) == NOT_FOUND
    assert db.lookup(DAMAGED) == NOT_FOUND


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", CORRUPT_FILES, ids=lambda p: p.name)
def test_corrupt_files_that_load_give_the_readers_verdicts(path: Path, mode: str) -> None:
    try:
        db = open_db(path, ANY_TYPE, mode)
    except ConfigError:
        return
    reference = open_db(path, ANY_TYPE, "mmap_ext" if has_extension() else mode)
    for ip in [*random_ips(7, 300), *boundaries_or_nothing(path)]:
        assert found(db, ip) == looked_up(reference, ip), ip


def boundaries_or_nothing(path: Path) -> list[IP]:
    try:
        return list(boundaries(path))
    except Exception:
        return []


@pytest.mark.parametrize("mode", MODES)
def test_random_damage_to_the_tree(tmp_path: Path, mode: str) -> None:
    """Bytes of the tree or separator overwritten: loaded files answer as the C reader does."""
    data = CITY.read_bytes()
    tree_end = _reader_for(data).metadata().node_count * 7 + 16
    rng = random.Random(11)
    ips = random_ips(8, 120)
    loaded = 0
    for n in range(25):
        copy = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            copy[rng.randrange(tree_end)] = rng.randrange(256)
        path = tmp_path / f"GeoIP2-City-{n}.mmdb"
        path.write_bytes(bytes(copy))
        try:
            db = open_db(path, COUNTRY, mode)
        except ConfigError:
            continue
        loaded += 1
        reference = open_db(path, COUNTRY, "mmap_ext" if has_extension() else mode)
        for ip in ips:
            assert found(db, ip) == looked_up(reference, ip), ip
    assert loaded > 5


# -- behaviour ------------------------------------------------------------------------------


def test_ipv4_only_database() -> None:
    db = open_db(FIXTURES / "GeoIP2-City-IPv4-only.mmdb")
    assert db.find(ip_of("81.2.69.142")) == GeoRecord(True, "GB", ("GB-ENG",))
    assert db.find(ip_of("::ffff:81.2.69.142")) == GeoRecord(True, "GB", ("GB-ENG",))
    assert db.find(ip_of("2a02:d0c0::1")) == NOT_FOUND
    assert db.find(ip_of("::1")) == NOT_FOUND


def test_answers_are_memoised_per_record_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmdb, "CACHE_SIZE", 8)
    db = open_db(CITY)
    first = db.find(ip_of("81.2.69.142"))
    assert first is db.find(ip_of("81.2.69.143"))  # the same network: no new decode
    db._in_place = False  # every record through the reader, which counts them
    db.reader = reader = FakeReader(db.reader)
    for ip in boundaries(CITY):
        db.find(ip)
        assert len(db.answers) <= 8
    assert reader.calls > 8  # the memo was dropped when full and refilled
    assert db.cache == {}  # find() does not fill lookup()'s per-address cache


def test_a_failed_record_is_not_memoised() -> None:
    db = open_db(FIXTURES / "GeoIP2-City-bad-record.mmdb")
    for _ in range(2):
        with pytest.raises(DatabaseError, match=r"216\.160\.83\.56"):
            db.find(ip_of("216.160.83.56"))
    assert all(isinstance(answer, GeoRecord) for answer in db.answers.values())


class FakeReader:
    """Wraps a reader (the C one takes no new attributes): counts, or replaces, get()."""

    def __init__(self, real: Any, get: Callable[[str], Any] | None = None) -> None:
        self.real = real
        self.calls = 0
        self._get = get or real.get

    def get(self, text: str) -> Any:
        self.calls += 1
        return self._get(text)

    def close(self) -> None:
        self.real.close()


def test_a_reader_failure_is_a_database_error() -> None:
    db = open_db(CITY)
    db._in_place = False  # records read in place need no reader (tests/native/test_mmdbdata.py)

    def broken(text: str) -> Any:
        raise RuntimeError("boom")

    db.reader = FakeReader(db.reader, broken)
    with pytest.raises(DatabaseError, match="boom"):
        db.find(ip_of("81.2.69.142"))
    db.reader = FakeReader(db.reader.real, lambda text: None)
    with pytest.raises(DatabaseError, match="no record"):
        db.find(ip_of("81.2.69.142"))
    assert db.find(ip_of("1.1.1.1")) == NOT_FOUND  # not found needs no reader


def test_a_file_replaced_during_the_load_is_not_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree must come from the file the reader opened; otherwise find() uses the reader."""
    path = tmp_path / "GeoIP2-City.mmdb"
    path.write_bytes(CITY.read_bytes())
    real_open = maxminddb.open_database

    def open_then_replace(name: str, mode: int) -> Any:
        reader = real_open(name, mode)
        replacement = tmp_path / "new.mmdb"
        replacement.write_bytes((FIXTURES / "GeoIP2-City-UA.mmdb").read_bytes())
        replacement.rename(path)  # what geoipupdate does
        return reader

    monkeypatch.setattr(maxminddb, "open_database", open_then_replace)
    db = open_db(path)
    assert db.tree is None
    assert db.find(ip_of("81.2.69.142")) == GeoRecord(True, "GB", ("GB-ENG",))  # the old file
    assert db.find(ip_of("31.43.1.1")) == NOT_FOUND


def test_too_large_a_tree_is_not_copied(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mmdb, "MAX_NODES", 1000)
    with caplog.at_level(logging.INFO, logger="geofence"):
        db = open_db(CITY)
    assert db.tree is None
    assert "search tree nodes" in caplog.text
    assert db.find(ip_of("81.2.69.142")) == GeoRecord(True, "GB", ("GB-ENG",))
    assert db.find(ip_of("2a02:d2c0::1")) == GeoRecord(True, "IR", ())
    assert db.cache  # through lookup()


def test_unknown_layouts_are_not_copied() -> None:
    import io

    assert mmdbtree.read_children(io.BytesIO(bytes(100)), 10, 20) is None
    assert mmdbtree.read_children(io.BytesIO(bytes(59)), 10, 24) is None  # the file ends early


def test_tree_memory_is_eight_bytes_a_node_plus_the_tables() -> None:
    db = open_db(CITY)
    count = db.tree.node_count
    assert db.tree.memory() == 8 * count + 2 * 4 * 2**mmdbtree.STRIDE


def test_reloading_find_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "GeoIP2-City.mmdb"
    path.write_bytes(CITY.read_bytes())
    now = [0.0]
    opener = lambda: open_db(path)  # noqa: E731
    db: Reloading[GeoRecord] = Reloading(opener(), opener, "geoip.country_db", 10, lambda: now[0])
    crimea = ip_of("31.43.1.1")
    assert db.find(crimea) == NOT_FOUND
    replacement = tmp_path / "new.mmdb"
    replacement.write_bytes((FIXTURES / "GeoIP2-City-UA.mmdb").read_bytes())
    replacement.rename(path)
    assert db.find(crimea) == NOT_FOUND  # not checked before the interval
    now[0] = 10.0
    assert db.find(crimea) == GeoRecord(True, "UA", ("UA-43",))
    assert db.reloads == 1


def test_embedded_find() -> None:
    db = EmbeddedCountryDB(lambda ip: "CN" if ip == "175.16.199.1" else None)
    assert db.find(ip_of("175.16.199.1")) == GeoRecord(True, "CN", ())
    assert db.find(ip_of("::ffff:175.16.199.1")) == GeoRecord(True, "CN", ())
    assert db.find(ip_of("2a02:d0c0::1")) == NOT_FOUND


def test_a_database_collected_at_interpreter_exit_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At interpreter exit a module's globals may already be None when a database left in a
    reference cycle is collected: its __del__ must not print "Exception ignored"."""
    db = open_db(TEST_DATA / "GeoIP2-Country-Test.mmdb")
    monkeypatch.setattr(mmdb, "contextlib", None)
    db.__del__()  # what the collector calls; it raised AttributeError before
    monkeypatch.undo()
    db.close()
