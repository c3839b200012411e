"""SearchTree.leaf / leaf_prefix: the compiled walk (geofence.hotpath._native) against the Python
one.

On every .mmdb geofence copies a search tree from, seeded random addresses give the same
(record, prefix_len) both ways, and the record is the one the maxminddb reader finds, with a
prefix never shorter than the reader's (callers treat every address sharing those first bits
as ending on the same record). Damaged trees give the same TreeError both ways.

Runs with and without the extension: the native-only comparisons skip when it is not loaded;
the Python walk is still checked against maxminddb.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import maxminddb
import pytest

from geofence.clientip._addresses import IP
from geofence.geoip import _mmdb as mmdb
from geofence.geoip import _tree
from geofence.geoip._kinds import signature
from geofence.geoip._tree import STRIDE, SearchTree, TreeError
from geofence.hotpath import NATIVE

ROOT = Path(__file__).parents[2]
SOURCES = [Path("/work/shared/testdata/maxmind"), ROOT / "tests" / "data"]
PER_FAMILY = 20_000
NEEDS_NATIVE = pytest.mark.skipif(
    NATIVE is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON)",
)

Walk = Callable[[IP], tuple[int, int]]


def _unique_databases() -> list[Path]:
    """Every .mmdb under SOURCES, one path per distinct content (tests/data holds copies)."""
    seen: dict[str, Path] = {}
    for source in SOURCES:
        for path in sorted(source.rglob("*.mmdb")):
            seen.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return sorted(seen.values())


def _load(path: Path) -> tuple[SearchTree, maxminddb.Reader] | None:
    """geofence's tree for ``path`` and a reader on it; None when geofence copies no tree."""
    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)
    except Exception:  # maxminddb 2.6 raises IndexError on some broken files
        return None
    meta = reader.metadata()
    tree = mmdb._load_tree(
        str(path),
        signature(str(path)),
        meta.node_count,
        meta.record_size,
        meta.ip_version,
    )
    if tree is None:
        reader.close()
        return None
    return tree, reader


DATABASES = [path for path in _unique_databases() if _load(path) is not None]


def test_trees_were_found() -> None:
    # The parity tests below are parametrized over this list: an empty one would pass vacuously.
    names = {path.name for path in DATABASES}
    assert len(DATABASES) >= 20
    assert {"GeoIP2-City-Test.mmdb", "MaxMind-DB-test-ipv4-24.mmdb"} <= names


def _networks(reader: maxminddb.Reader) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        for network, _record in reader:
            yield network
    except (
        maxminddb.InvalidDatabaseError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        RecursionError,  # maxminddb 2.6's Python decoder on deeply nested records
    ):
        return  # a damaged file stops the listing; the random addresses still cover it


def _addresses(reader: maxminddb.Reader, seed: str) -> list[IP]:
    """PER_FAMILY random IPv4 and (in an IPv6 tree) IPv6 addresses, half of them inside the
    database's own networks so that walks go deep, plus every network's first and last."""
    rng = random.Random(seed)
    v6 = reader.metadata().ip_version == 6
    networks = list(_networks(reader))
    by_family: dict[int, list[Any]] = {4: [], 6: []}
    for network in networks:
        by_family[network.version].append(network)
    found: list[IP] = []
    for version, bits in ((4, 32), (6, 128)):
        if version == 6 and not v6:
            continue
        inside = by_family[version]
        for n in range(PER_FAMILY):
            if version == 6 and n % 8 == 0:
                value = rng.getrandbits(32)  # ::a.b.c.d, the IPv4 subtree reached as IPv6
            elif inside and n % 2:
                network = rng.choice(inside)
                host = rng.getrandbits(bits - network.prefixlen) if network.prefixlen < bits else 0
                value = int(network.network_address) | host
            else:
                value = rng.getrandbits(bits)
            found.append(IP("", version, value))
        for network in inside:
            found.append(IP("", version, int(network.network_address)))
            found.append(IP("", version, int(network.broadcast_address)))
    return found


def _outcome(walk: Walk, ip: IP) -> tuple[int, int] | str:
    try:
        return walk(ip)
    except TreeError as error:
        return f"TreeError: {error}"


@NEEDS_NATIVE
@pytest.mark.parametrize("path", DATABASES, ids=lambda p: p.name)
def test_native_walk_equals_python_walk(path: Path) -> None:
    loaded = _load(path)
    assert loaded is not None
    tree, reader = loaded
    with reader:
        addresses = _addresses(reader, path.name)
    assert tree.leaf.__name__ == "leaf_native"
    assert tree.leaf_prefix.__name__ == "leaf_prefix_native"
    native_leaf, native_leaf_prefix = tree.native_walks()
    mismatches = []
    for ip in addresses:
        native = _outcome(native_leaf_prefix, ip)
        python = _outcome(tree._leaf_prefix_python, ip)
        if native != python:
            mismatches.append((ip, native, python))
            continue
        leaf_native = _outcome(lambda i: (native_leaf(i), 0), ip)
        leaf_python = _outcome(lambda i: (tree._leaf_python(i), 0), ip)
        expected = native if isinstance(native, str) else (native[0], 0)
        if not leaf_native == leaf_python == expected:
            mismatches.append((ip, leaf_native, leaf_python))
    assert mismatches == []


@pytest.mark.parametrize("path", DATABASES, ids=lambda p: p.name)
def test_walk_finds_the_readers_record_with_a_prefix_at_least_as_long(path: Path) -> None:
    """Whichever walk is loaded (leaf_prefix) agrees with maxminddb's get_with_prefix_len."""
    loaded = _load(path)
    assert loaded is not None
    tree, reader = loaded
    ext = mmdb.has_extension()
    c_reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP_EXT if ext else 0)
    decoded: dict[int, Any] = {}
    compared = 0
    problems = []
    with reader, c_reader:
        for ip in _addresses(reader, path.name):
            text = str(ipaddress.ip_address(ip.value) if ip.version == 6 else _v4(ip.value))
            try:
                record, prefix = tree.leaf_prefix(ip)
                if record != tree.node_count:
                    tree.check(record)
            except TreeError:
                continue  # test_mmdb_tree checks these against the reader's own errors
            try:
                expected, expected_prefix = c_reader.get_with_prefix_len(text)
                if record != tree.node_count and record not in decoded:
                    # The pure-Python reader decodes a data pointer (records are node_count
                    # + 16 + offset, which it takes as is).
                    decoded[record] = reader._resolve_data_pointer(record)
            except (
                maxminddb.InvalidDatabaseError,
                ValueError,
                KeyError,
                IndexError,
                TypeError,
                RecursionError,
            ):
                continue  # the reader refuses it; same as above
            compared += 1
            mine = None if record == tree.node_count else decoded[record]
            if mine != expected or prefix < expected_prefix:
                problems.append((text, record, prefix, expected_prefix))
    assert problems == []
    # MaxMind's bad-data files may hold nothing the reader can decode.
    assert compared > 0 or "bad-data" in path.parts


@pytest.mark.parametrize("path", DATABASES, ids=lambda p: p.name)
def test_every_address_under_the_prefix_ends_on_the_same_record(path: Path) -> None:
    loaded = _load(path)
    assert loaded is not None
    tree, reader = loaded
    rng = random.Random(f"prefix {path.name}")
    with reader:
        addresses = _addresses(reader, path.name)[::7]
    wrong = []
    for ip in addresses:
        try:
            record, prefix = tree.leaf_prefix(ip)
        except TreeError:
            continue
        bits = 32 if ip.version == 4 else 128
        host_bits = bits - prefix
        for _ in range(3):
            other = IP("", ip.version, ip.value ^ (rng.getrandbits(host_bits) if host_bits else 0))
            if tree.leaf_prefix(other)[0] != record:
                wrong.append((ip, prefix, other))
    assert wrong == []


def _v4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def test_prefix_is_stride_when_the_table_entry_is_already_a_leaf() -> None:
    # A tree of one node whose both records are "not found": the table entry for every first
    # 16 bits is that leaf already, so the walk reads no bit past the table.
    left = array("I", [1])
    right = array("I", [1])
    tree = SearchTree((left, right), node_count=1, record_size=24, ip_version=4, file_size=6)
    for ip in (IP("0.0.0.0", 4, 0), IP("255.255.255.255", 4, 2**32 - 1)):
        assert tree.leaf_prefix(ip) == (1, STRIDE)
        assert tree._leaf_prefix_python(ip) == (1, STRIDE)
        assert tree.leaf(ip) == 1
        if NATIVE is not None:
            assert tree.native_walks()[1](ip) == (1, STRIDE)


def _chain(depth: int) -> tuple[array[int], array[int]]:
    """A tree of ``depth`` nodes where node n's left record is node n+1 and every right
    record is a data pointer: 0.0.0.0 walks all ``depth`` nodes."""
    count = depth
    left = array("I", [n + 1 for n in range(count)])
    right = array("I", [count + 16 + n for n in range(count)])
    return left, right


@pytest.mark.parametrize("depth", [17, 24, 31, 32])
def test_prefix_counts_the_bits_walked(depth: int) -> None:
    left, right = _chain(depth)
    tree = SearchTree(
        (left, right), node_count=depth, record_size=32, ip_version=4, file_size=10**6
    )
    # 0.0.0.0 follows left records to the end: node_count (not found) after ``depth`` bits.
    walks: list[Walk] = [tree.leaf_prefix, tree._leaf_prefix_python]
    if NATIVE is not None:
        walks.append(tree.native_walks()[1])
    for walk in walks:
        assert walk(IP("0.0.0.0", 4, 0)) == (depth, depth)
        # The first 1 bit after the table leaves at once: bit 17 set is the 17th bit read.
        assert walk(IP("0.0.128.0", 4, 1 << 15)) == (depth + 16 + STRIDE, STRIDE + 1)


@pytest.mark.parametrize("version", [4, 6])
def test_every_depth_and_every_exit_is_counted(version: int) -> None:
    """The compiled walk reads 8 levels at a time while 8 bits are left in the word it reads,
    then one at a time, then (IPv6) the low half: a chain of every depth ends where the
    Python walk ends, as does a 1 bit at every position below the table."""
    bits = 32 if version == 4 else 128
    for depth in range(STRIDE + 1, bits + 1):
        left, right = _chain(depth)
        tree = SearchTree(
            (left, right), node_count=depth, record_size=32, ip_version=version, file_size=10**6
        )
        walks: list[Walk] = [tree._leaf_prefix_python]
        if NATIVE is not None:
            walks.append(tree.native_walks()[1])
        for walk in walks:
            # All zeros: every node, to the end of the chain; a 1 bit at level k: out at k.
            assert walk(IP("", version, 0)) == (depth, depth)
            for k in range(STRIDE + 1, depth + 1):
                assert walk(IP("", version, 1 << (bits - k))) == (depth + 16 + k - 1, k)


def _damaged_outcomes(tree: SearchTree, ips: list[IP]) -> list[Any]:
    walks: list[Walk] = [tree._leaf_prefix_python]
    if NATIVE is not None:
        walks.append(tree.native_walks()[1])
    results = []
    for ip in ips:
        outcomes = {repr(_outcome(walk, ip)) for walk in walks}
        assert len(outcomes) == 1, (ip, outcomes)
        results.append(outcomes.pop())
    return results


def test_a_loop_in_the_tree_is_the_same_tree_error_both_ways() -> None:
    path = next(p for p in DATABASES if p.name == "GeoIP2-City-Test.mmdb")
    loaded = _load(path)
    assert loaded is not None
    tree, reader = loaded
    with reader:
        every = _addresses(reader, "loop")
    addresses = [ip for ip in every if ip.version == 4][:2000]
    addresses += [ip for ip in every if ip.version == 6][:2000]
    left, right = tree._children
    # Corrupt: both records of the upper half of the nodes point back at their own node, so
    # an address that reaches one runs out of bits on it.
    damaged_left, damaged_right = array("I", left), array("I", right)
    for node in range(tree.node_count // 2, tree.node_count):
        damaged_left[node] = damaged_right[node] = node
    meta = reader.metadata()
    damaged = SearchTree(
        (damaged_left, damaged_right),
        node_count=meta.node_count,
        record_size=meta.record_size,
        ip_version=meta.ip_version,
        file_size=path.stat().st_size,
    )
    results = _damaged_outcomes(damaged, addresses)
    errors = [r for r in results if "TreeError" in r]
    assert errors, "the corruption should reach some addresses"
    assert len(errors) < len(results)
    with pytest.raises(TreeError, match="no record at the end"):
        damaged.leaf(next(ip for ip, r in zip(addresses, results, strict=True) if "TreeError" in r))


def test_bits_running_out_on_a_node_is_tree_error_both_ways() -> None:
    # Every record points at the next node, more nodes than address bits.
    count = 200
    chain = array("I", [n + 1 for n in range(count)])
    tree = SearchTree(
        (chain, chain), node_count=count, record_size=32, ip_version=6, file_size=10**6
    )
    ips = [IP("", 4, 0), IP("", 4, 2**32 - 1), IP("", 6, 0), IP("", 6, 2**128 - 1)]
    assert (
        _damaged_outcomes(tree, ips)
        == [repr("TreeError: the search tree has no record at the end of this address")] * 4
    )
    for ip in ips:
        with pytest.raises(TreeError):
            tree.leaf(ip)


def test_arrays_shorter_than_node_count_are_refused() -> None:
    left, right = _chain(40)
    with pytest.raises(ValueError, match="fewer than node_count"):
        SearchTree((left, right[:-1]), node_count=40, record_size=32, ip_version=4, file_size=10**6)


@NEEDS_NATIVE
def test_native_walk_never_reads_outside_the_arrays() -> None:
    # Called directly (SearchTree refuses such arrays): node_count says 1,000 nodes, the arrays
    # hold 3, and the records lead to node 500.
    assert NATIVE is not None
    left = array("I", [1, 2, 500])
    right = array("I", [1, 2, 500])
    table = array("I", [0]) * (1 << STRIDE)
    assert NATIVE.walk(left, right, table, 1000, 0, 32, STRIDE) == (-1, 32)
    assert NATIVE.walk(left, right, table, 1000, 2**128 - 1, 128, STRIDE) == (-1, 128)
    # A table too short for the stride, wrong item sizes, values too wide: errors, not reads.
    with pytest.raises(ValueError, match="table"):
        NATIVE.walk(left, right, table[:100], 1000, 0, 32, STRIDE)
    with pytest.raises(TypeError):
        NATIVE.walk(array("Q", [1]), right, table, 1000, 0, 32, STRIDE)
    with pytest.raises(TypeError):
        NATIVE.walk(b"\x00" * 12, right, table, 1000, 0, 32, STRIDE)
    with pytest.raises(OverflowError):
        NATIVE.walk(left, right, table, 1000, 2**32, 32, STRIDE)
    with pytest.raises(OverflowError):
        NATIVE.walk(left, right, table, 1000, 2**128, 128, STRIDE)
    with pytest.raises(OverflowError):
        NATIVE.walk(left, right, table, 1000, -1, 128, STRIDE)
    with pytest.raises(ValueError, match="bits"):
        NATIVE.walk(left, right, table, 1000, 0, 64, STRIDE)
    with pytest.raises(TypeError):
        NATIVE.walk(left, right, table, 1000, "0", 32, STRIDE)
    with pytest.raises(TypeError):
        NATIVE.walk(left, right, table, 1000, 0, 32)  # type: ignore[call-arg]


def test_the_walk_is_chosen_once_at_construction() -> None:
    left, right = _chain(20)
    tree = SearchTree((left, right), node_count=20, record_size=32, ip_version=4, file_size=10**6)
    if NATIVE is None:
        assert tree.leaf.__func__ is SearchTree._leaf_python  # type: ignore[attr-defined]
        assert tree.leaf_prefix.__func__ is SearchTree._leaf_prefix_python  # type: ignore[attr-defined]
    else:
        assert tree.leaf.__name__ == "leaf_native"
        assert tree.leaf_prefix.__name__ == "leaf_prefix_native"
    assert _tree.NATIVE is NATIVE
