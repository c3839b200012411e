"""The compiled Finder's IPv6 walk from the /24 and /32 nodes it met before (deep_walk in
_native.c): it must end exactly where a walk from the root ends, whichever slot it starts
from, whatever other prefix last wrote that slot, and on a damaged tree.

The trees are built here, network by network, so that leaves lie on every side of the two
cached depths; more /24s and /32s than the slots (4,096 each) make prefixes share slots
whatever the slot hash. Skipped on the pure-Python build (no Finder).
"""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest
from trees import loop_at, root_walk, shuffled_rounds
from trees import v6_tree as _tree

from geofence.clientip._addresses import IP
from geofence.geoip._tree import SearchTree, TreeError
from geofence.hotpath import NATIVE

pytestmark = pytest.mark.skipif(
    NATIVE is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON)",
)

SLOTS = 4096  # DEEP_SLOTS in _native.c


class Slow:
    """A find_prefix on a walk from the root that keeps nothing: the reference."""

    def __init__(self, tree: SearchTree) -> None:
        self.tree, self.answers, self.calls = tree, {}, 0  # type: dict[int, Any]

    def __call__(self, ip: IP) -> tuple[Any, int]:
        self.calls += 1
        record, prefix = root_walk(self.tree, ip.value)
        return self.answers.setdefault(record, ("decoded", record)), prefix


def _outcome(find: Any, ip: IP) -> Any:
    try:
        return find(ip)
    except TreeError as error:
        return f"TreeError: {error}"


def _check(tree: SearchTree, addresses: list[int], rounds: int = 2) -> Slow:
    """Every address through a Finder, ``rounds`` times in different orders, against the
    Python walk; returns the Finder's slow path (to count what C did not answer)."""
    slow, reference = Slow(tree), Slow(tree)
    finder = tree.finder(slow.answers, slow, ipv6=True)
    mismatches = []
    for value in shuffled_rounds(addresses, rounds):
        ip = IP("", 6, value)
        got, want = _outcome(finder, ip), _outcome(reference, ip)
        if got != want:
            mismatches.append((hex(value), got, want))
    assert mismatches == []
    return slow


P16 = 0x2A0B << 112


def test_leaves_on_every_side_of_the_cached_depths() -> None:
    """Networks ending above, at, between and below depths 24 and 32 (down to /128), in the
    same /24s and /32s: the addresses that fill a slot and those that start from it."""
    rng = random.Random(24_32)
    networks: dict[tuple[int, int], int] = {}
    lengths = [17, 20, 23, 24, 25, 28, 31, 32, 33, 40, 48, 63, 64, 65, 96, 127, 128]
    for record, length in enumerate(lengths * 12):
        value = P16 | rng.getrandbits(112) >> (128 - length) << (128 - length)
        networks.setdefault((value, length), record)
    # A /20 with a /32 and a /48 inside it: the /20 leaf covers what they do not.
    outer = P16 | 0xABC << 96
    networks = {(outer | 0xD << 92 | 0x12 << 84, 48): 900, (outer | 0x7 << 92, 32): 901, **networks}
    networks[outer, 20] = 902
    tree = _tree(networks)
    addresses = []
    for value, length in networks:
        span = (1 << (128 - length)) - 1
        addresses += [value, value | span, value | rng.getrandbits(128 - length)]
        addresses += [value ^ 1 << (128 - length), value | rng.getrandbits(104) >> length]
    addresses += [P16 | rng.getrandbits(112) for _ in range(2000)]
    slow = _check(tree, addresses, rounds=3)
    # Each record went through the slow path once: every other answer came from C.
    assert slow.calls == len(slow.answers)


def test_prefixes_sharing_a_slot_never_start_from_each_others_node() -> None:
    """More /24s and /32s than slots, each /32 holding networks of its own below depth 32:
    many share a slot, and the addresses are asked in shuffled rounds so that each slot is
    overwritten back and forth. A start from another prefix's node would end on its record."""
    rng = random.Random(4096)
    networks: dict[tuple[int, int], int] = {}
    while len(networks) < 3 * SLOTS:
        top16 = 0x2000 | rng.getrandbits(6)  # 64 /16s: about 3 /32s per /24 used
        p32 = top16 << 16 | rng.getrandbits(16)
        length = rng.choice([33, 36, 40, 48, 56, 64])
        value = p32 << 96 | rng.getrandbits(96) >> (128 - length) << (128 - length)
        networks.setdefault((value, length), len(networks))
    tree = _tree(networks)
    assert len({v >> 104 for v, _ in networks}) > SLOTS  # /24s
    assert len({v >> 96 for v, _ in networks}) > SLOTS  # /32s
    addresses = [value | rng.getrandbits(128 - length) for value, length in networks]
    addresses += [value >> 96 << 96 for value, _ in networks]  # mostly not found
    _check(tree, addresses, rounds=3)


def test_a_damaged_tree_below_a_cached_node_is_the_same_tree_error() -> None:
    """Loops between depths 24 and 32 and below 32: the walk that fills the slots and every
    walk that starts from them end in the Python walk's TreeError (bits run out on a node)."""
    p32, q24 = P16 | 0x1234 << 96, P16 | 0x56 << 104
    bad32, bad24 = p32 | 1 << 95, q24 | 1 << 103  # bit 32, bit 24: off the good paths
    networks = {(bad32, 38): 1, (bad24, 28): 2, (p32, 40): 3, (q24, 30): 4}
    tree = _tree(networks)
    left, right = (array("I", a) for a in tree._children)
    loop_at(left, right, bad32, 35)
    loop_at(left, right, bad24, 26)
    damaged = SearchTree(
        (left, right), node_count=tree.node_count, record_size=32, ip_version=6, file_size=10**9
    )
    addresses = [bad32, bad32 | 5, p32, p32 | 77, bad24, bad24 | 1 << 90, q24, q24 | 9]
    errors = _check(damaged, addresses, rounds=3).calls
    outcomes = [_outcome(Slow(damaged), IP("", 6, v)) for v in addresses]
    assert sum("TreeError" in str(o) for o in outcomes) == 4
    assert errors >= 3 * 4  # a damaged walk goes to the slow path every time
