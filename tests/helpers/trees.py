"""Search trees built network by network, for tests of the walks (tests/helpers is on
pytest's ``pythonpath``)."""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator

from geofence.geoip._tree import STRIDE, SearchTree, TreeError


def v6_tree(networks: dict[tuple[int, int], int]) -> SearchTree:
    """An IPv6 tree holding each (value, prefix length) network as a leaf for its record
    number; every other address is not found. Longer networks may sit under shorter ones
    only if added first (the shorter one then fills the rest of its range)."""
    nodes: list[list[int | None]] = [[None, None]]  # None: not found; -1 - n: record n
    for (value, length), record in sorted(networks.items(), key=lambda kv: -kv[0][1]):
        node = 0
        for depth in range(length - 1):
            bit = value >> (127 - depth) & 1
            child = nodes[node][bit]
            if child is None:
                nodes.append([None, None])
                child = nodes[node][bit] = len(nodes) - 1
            assert child >= 0, "a network under a shorter one must be added first"
            node = child
        bit = value >> (128 - length) & 1
        if nodes[node][bit] is None:
            nodes[node][bit] = -1 - record
        else:  # a longer network is already below: fill every free side under this one
            stack = [nodes[node][bit]]
            while stack:
                below = nodes[stack.pop()]  # type: ignore[index]
                for side in (0, 1):
                    if below[side] is None:
                        below[side] = -1 - record
                    elif below[side] >= 0:  # type: ignore[operator]
                        stack.append(below[side])
    count = len(nodes)

    def record_of(child: int | None) -> int:
        if child is None:
            return count  # not found
        return child if child >= 0 else count + 16 + (-1 - child)

    left = array("I", (record_of(n[0]) for n in nodes))
    right = array("I", (record_of(n[1]) for n in nodes))
    return SearchTree(
        (left, right), node_count=count, record_size=32, ip_version=6, file_size=10**9
    )


def root_walk(tree: SearchTree, value: int) -> tuple[int, int]:
    """The record the IPv6 ``value`` leads to, walked bit by bit from the root with nothing
    kept, and its depth as ``leaf_prefix`` reports it (at least the table's STRIDE)."""
    left, right = tree._children
    node = 0
    for depth in range(128):
        node = (left, right)[value >> (127 - depth) & 1][node]
        if node >= tree.node_count:
            return node, max(depth + 1, STRIDE)
    raise TreeError("the search tree has no record at the end of this address")


def loop_at(left: array[int], right: array[int], value: int, depth: int) -> None:
    """Damage: the node ``value``'s path meets at ``depth`` points back at itself on both
    sides, so every walk through it runs out of address bits on a node."""
    node = 0
    for level in range(depth):
        node = (left, right)[value >> (127 - level) & 1][node]
    left[node] = right[node] = node


def shuffled_rounds(addresses: list[int], rounds: int) -> Iterator[int]:
    """Every address ``rounds`` times, each round in another seeded order: walks that keep
    something meet what earlier walks kept, in every order."""
    rng = random.Random(len(addresses))
    for _ in range(rounds):
        order = addresses[:]
        rng.shuffle(order)
        yield from order
