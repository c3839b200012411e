"""geofence._leaves (geofence/_leaves.c): every record a search tree leads to, found in C,
and the records a Country database decodes when it is opened."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest
from tests_support import CITY_DB, COUNTRY_DB

from geofence._speedups import LEAVES
from geofence.clientip._addresses import IP
from geofence.geoip import open_mmdb
from geofence.geoip._databases import COUNTRY
from geofence.geoip._mmdb import PRELOAD_LIMIT
from geofence.geoip._tree import SearchTree

pytestmark = pytest.mark.skipif(LEAVES is None, reason="geofence._leaves is not built here")
TEST_DATA = Path(__file__).parent.parent / "data" / "maxmind" / "test-data"
DATABASES = sorted(
    p for p in TEST_DATA.glob("*.mmdb") if "Broken" not in p.name and "Invalid" not in p.name
)


def _reference(tree: SearchTree, bits: int) -> dict[int, tuple[int, int]]:
    """The same walk in Python: depth first, left before right, first network kept."""
    left, right = tree._children
    count = tree.node_count
    found: dict[int, tuple[int, int]] = {}
    stack = [(0, 0, 0)]
    while stack:
        node, depth, value = stack.pop()
        if node >= count:
            found.setdefault(node, (value << (bits - depth), depth))
            continue
        stack.append((right[node], depth + 1, value << 1 | 1))
        stack.append((left[node], depth + 1, value << 1))
    return found


@pytest.mark.parametrize("path", DATABASES, ids=lambda p: p.name)
def test_every_record_is_found_with_a_network_leading_to_it(path: Path) -> None:
    assert LEAVES is not None
    try:
        db = open_mmdb(str(path), COUNTRY, 0)
    except Exception:  # not a country database: open its tree all the same
        pytest.skip("not a database geofence opens as a country database")
    tree = db.tree
    assert tree is not None
    bits = 32 if db._ipv4_only else 128
    left, right = tree._children
    found = LEAVES.first(left, right, tree.node_count, 0, bits, 1 << 20)
    assert found == _reference(tree, bits)
    for record, (value, length) in found.items():
        ip = IP("", 4 if bits == 32 else 6, value)
        assert tree.leaf(ip) == record, (value, length)


def test_a_country_database_decodes_its_records_when_opened() -> None:
    for path in (CITY_DB, COUNTRY_DB):
        db = open_mmdb(path, COUNTRY, 0)
        assert db.tree is not None
        left, right = db.tree._children
        found = LEAVES.first(left, right, db.tree.node_count, 0, 128, PRELOAD_LIMIT)  # type: ignore[union-attr]
        assert found is not None
        records = set(found) - {db.tree.node_count}
        assert records and records <= set(db.answers)


def test_more_records_than_the_limit_give_none() -> None:
    db = open_mmdb(CITY_DB, COUNTRY, 0)
    assert db.tree is not None
    left, right = db.tree._children
    assert LEAVES.first(left, right, db.tree.node_count, 0, 128, 3) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("left", "right", "count"),
    [
        ([0, 0], [0, 0], 2),  # every node loops back to the root: bounded, then None
        ([1, 0], [1, 1], 2),  # a cycle between two nodes
        ([1, 1], [1, 1], 2),  # a node that leads to itself: deeper than the bits
    ],
)
def test_a_damaged_tree_gives_none_and_never_crashes(
    left: list[int], right: list[int], count: int
) -> None:
    assert LEAVES is not None
    for bits in (32, 128):
        result = LEAVES.first(array("I", left), array("I", right), count, 0, bits, 1000)
        assert result is None or all(record >= count for record in result)


@pytest.mark.parametrize(
    "args",
    [
        (array("I", [1]), array("I", [1, 2]), 1, 0, 32, 10),  # arrays of different lengths
        (array("I", [1]), array("I", [1]), 1, 0, 64, 10),  # bits
        (array("I", [1]), array("I", [1]), 5, 0, 32, 10),  # more nodes than the arrays hold
        (b"abc", b"abc", 0, 0, 32, 10),  # not arrays of 4-byte records
    ],
)
def test_bad_arguments_raise(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        LEAVES.first(*args)  # type: ignore[union-attr]
