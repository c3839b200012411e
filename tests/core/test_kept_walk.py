"""The Python walk's kept IPv6 nodes (SearchTree._kept, used without the compiled walk): a
walk that starts from the node kept after 24, 32 or 40 bits must end exactly where a walk from
the root ends, on every side of those depths, when the dicts are emptied at their bound, and
on a damaged tree. Runs on both builds: the compiled build keeps the Python walk for its tests.
"""

from __future__ import annotations

import random
from array import array

import pytest
from trees import loop_at, root_walk, shuffled_rounds, v6_tree

from geofence.clientip._addresses import IP
from geofence.geoip import _tree
from geofence.geoip._tree import SearchTree, TreeError

P16 = 0x2A0B << 112
KEPT = (24, 32, 40)


def _outcome(walk: object, value: int) -> object:
    try:
        return walk(value)  # type: ignore[operator]
    except TreeError as error:
        return f"TreeError: {error}"


def _check(tree: SearchTree, addresses: list[int], rounds: int = 3) -> None:
    """Every address, ``rounds`` times in shuffled orders, through leaf_prefix's and leaf's
    Python walks against the root walk."""
    mismatches = []
    for value in shuffled_rounds(addresses, rounds):
        want = _outcome(lambda v: root_walk(tree, v), value)
        got = _outcome(lambda v: tree._leaf_prefix_python(IP("", 6, v)), value)
        leaf = _outcome(lambda v: tree._leaf_python(IP("", 6, v)), value)
        if got != want or leaf != (want[0] if isinstance(want, tuple) else want):
            mismatches.append((hex(value), got, leaf, want))
    assert mismatches == []


def _networks(rng: random.Random, lengths: list[int], repeat: int) -> dict[tuple[int, int], int]:
    networks: dict[tuple[int, int], int] = {}
    for record, length in enumerate(lengths * repeat):
        value = P16 | rng.getrandbits(112) >> (128 - length) << (128 - length)
        networks.setdefault((value, length), record)
    return networks


def _addresses(rng: random.Random, networks: dict[tuple[int, int], int]) -> list[int]:
    found = []
    for value, length in networks:
        span = (1 << (128 - length)) - 1
        found += [value, value | span, value | rng.getrandbits(128 - length)]
        found += [value ^ 1 << (128 - length), value | rng.getrandbits(104) >> length]
    return found + [P16 | rng.getrandbits(112) for _ in range(1000)]


def test_leaves_on_every_side_of_the_kept_depths() -> None:
    """Networks ending above, at, between and below depths 24, 32 and 40 (down to /128),
    sharing /24s, /32s and /40s: the walks that keep a node and those that start from it."""
    rng = random.Random(244_032)
    lengths = [17, 20, 23, 24, 25, 28, 31, 32, 33, 36, 39, 40, 41, 44, 48, 64, 96, 127, 128]
    networks = _networks(rng, lengths, 10)
    # Under one /20: a /32 and /40 and /48 inside it, the /20 leaf covering the rest.
    outer = P16 | 0xABC << 96
    inner = {(outer | 0x7 << 92, 32): 901, (outer | 0x7 << 92 | 0x55 << 80, 48): 903}
    networks = {(outer | 0xD << 92 | 0x12 << 84, 40): 900, **inner, **networks}
    networks[outer, 20] = 902
    tree = v6_tree(networks)
    _check(tree, _addresses(rng, networks))
    # Every depth kept something, and what it kept is the node the root walk passes there.
    left, right = tree._children
    for depth, kept in zip(KEPT, tree._kept, strict=True):
        assert kept
        for prefix, node in list(kept.items())[:200]:
            at = 0
            for level in range(depth):
                at = (left, right)[prefix >> (depth - 1 - level) & 1][at]
            assert at == node


def test_kept_nodes_are_bounded_and_walks_stay_right_when_emptied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With room for 8 nodes per depth, hundreds of /24s, /32s and /40s empty the dicts again
    and again between walks that start from them."""
    monkeypatch.setattr(_tree, "_KEPT_SIZE", 8)
    rng = random.Random(8)
    networks = _networks(rng, [26, 34, 42, 44, 56], 60)
    tree = v6_tree(networks)
    _check(tree, _addresses(rng, networks), rounds=2)
    assert all(0 < len(kept) <= 8 for kept in tree._kept)


def test_a_damaged_tree_below_a_kept_node_is_the_same_tree_error() -> None:
    """Loops between the kept depths and below the last: the walk that keeps the nodes above
    the loop and every walk that starts from them run out of bits on a node."""
    p40, p32, q24 = P16 | 0x123456 << 88, P16 | 0x9876 << 96, P16 | 0x56 << 104
    bad40, bad32, bad24 = p40 | 1 << 87, p32 | 1 << 95, q24 | 1 << 103
    networks = {(bad40, 46): 1, (bad32, 38): 2, (bad24, 28): 3, (p40, 44): 4, (p32, 36): 5}
    networks[q24, 30] = 6
    tree = v6_tree(networks)
    left, right = (array("I", a) for a in tree._children)
    loop_at(left, right, bad40, 43)
    loop_at(left, right, bad32, 35)
    loop_at(left, right, bad24, 26)
    damaged = SearchTree(
        (left, right), node_count=tree.node_count, record_size=32, ip_version=6, file_size=10**9
    )
    addresses = [bad40, bad40 | 3, bad32, bad32 | 5, bad24, bad24 | 1 << 90]
    addresses += [p40, p40 | 77, p32, p32 | 1 << 80, q24, q24 | 9]
    _check(damaged, addresses)
    errors = [_outcome(lambda v: damaged._leaf_prefix_python(IP("", 6, v)), v) for v in addresses]
    assert sum("TreeError" in str(e) for e in errors) == 6


def test_a_walk_starts_from_the_deepest_node_kept_for_its_bits() -> None:
    """What is kept is read: a record planted as the node kept for a /24, /32 or /40 is where
    a walk of an address under it ends, at that depth, the deepest one winning."""
    value = P16 | 0x12_3456_789A << 72
    tree = v6_tree({(value, 64): 1})
    at24, at32, at40 = tree._kept
    top = value >> 88
    planted = tree.node_count + 16 + 7  # a data record
    at24[top >> 16] = planted
    assert tree._leaf_prefix_python(IP("", 6, value)) == (planted, 24)
    at32[top >> 8] = planted + 1
    assert tree._leaf_prefix_python(IP("", 6, value)) == (planted + 1, 32)
    at40[top] = planted + 2
    assert tree._leaf_prefix_python(IP("", 6, value | 5)) == (planted + 2, 40)
    assert tree._leaf_prefix_python(IP("", 6, value ^ 1 << 88)) == (planted + 1, 32)
