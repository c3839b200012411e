"""A MaxMind DB search tree copied into memory, walked without the ``maxminddb`` reader.

A raw ``reader.get`` builds the whole record (names in every language, continent, registered
country...) for every address, yet a Country database has only a few thousand distinct
records for hundreds of thousands of networks. Walking the tree here gives the record's
*data pointer*, so :class:`~geofence.geoip._mmdb.MaxMindDB` decodes each record once and answers
every later address that leads to it from a dictionary.

A damaged tree gets the C reader's (libmaxminddb's) verdicts, in every reader mode: a record
pointing into the 16-byte separator or past the end of the file, or a walk that runs out of
address bits while still on a node, is a :class:`TreeError`.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from operator import length_hint as _left
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from geofence.clientip._addresses import IP
from geofence.hotpath import NATIVE

if TYPE_CHECKING:
    from mmap import mmap

T = TypeVar("T")  # what a database answers (see SearchTree.finder)

# The arrays are spelled as strings: array is subscriptable at runtime only from 3.12.
Walk = Callable[["array[int]", "array[int]", "array[int]", int, int, int, int], tuple[int, int]]


def _no_walk(*_: object) -> tuple[int, int]:
    raise RuntimeError("geofence.hotpath._native is not loaded")  # never called: see SearchTree


# geofence.hotpath._native.walk (see _native.pyi); without it SearchTree uses its Python walk.
_walk: Walk = _no_walk if NATIVE is None else NATIVE.walk

# Above this many nodes (8 bytes each here) lookups go through the reader as before: the copy
# is per process, whereas the reader's memory map is shared between processes. 4 Mi nodes
# (32 MiB) is a few times a full GeoIP2-Country tree.
MAX_NODES = 4 << 20
SEPARATOR = 16  # bytes between the search tree and the data section
# Address bits resolved by one table index before the bit-by-bit walk: 256 KiB per table.
STRIDE = 16
# The bits of each byte value, most significant first, as 0 and 1 when iterated.
_BYTE_BITS = tuple(bytes(byte >> shift & 1 for shift in range(7, -1, -1)) for byte in range(256))
# Without the compiled walk, an IPv6 walk keeps the node it is at after 24, 32 and 40 bits, by
# those bits, and starts from the deepest one kept: IPv6 networks end 16 to 32 levels below the
# table, where IPv4 ones end within 8, and each level costs several hundred instructions in
# Python. Clients cluster in a few hundred /24s and /32s (the allocations of large networks).
_KEPT_SIZE = 4096  # nodes kept per depth, at most (about 0.4 MB per depth when full)
_CHUNK_NODES = 1 << 16  # nodes read and converted at a time, which bounds the load's peak
# A 28-bit node is 7 bytes: the left record's low 3 bytes, a middle byte holding the left
# record's high nibble over the right one's, then the right record's low 3 bytes.
_HIGH_NIBBLE = bytes(byte >> 4 for byte in range(256))
_LOW_NIBBLE = bytes(byte & 15 for byte in range(256))
_TYPECODE = "I"  # unsigned, 4 bytes wherever CPython runs (checked in read_children)


class TreeError(Exception):
    """The search tree is damaged where this address leads."""


_RAN_OUT = "the search tree has no record at the end of this address"


Children = tuple["array[int]", "array[int]"]  # (left records, right records), by node


def read_children(file: BinaryIO, node_count: int, record_size: int) -> Children | None:
    """The left and the right record of every node, from ``file`` positioned at the tree.

    None when the record size is not one this module knows or the file ends early.
    """
    left: array[int] = array(_TYPECODE)
    right: array[int] = array(_TYPECODE)
    if record_size not in (24, 28, 32) or left.itemsize != 4:
        return None
    node_bytes = record_size // 4
    remaining = node_count
    while remaining:
        count = min(remaining, _CHUNK_NODES)
        node = file.read(count * node_bytes)
        if len(node) != count * node_bytes:
            return None
        # Each record becomes 4 big-endian bytes, gathered with extended slices (C speed):
        # wide[1::4] = node[0::6] takes byte 0 of every node as byte 1 of every record.
        lefts = bytearray(4 * count)
        rights = bytearray(4 * count)
        if record_size == 24:
            for byte in (1, 2, 3):
                lefts[byte::4] = node[byte - 1 :: 6]
                rights[byte::4] = node[byte + 2 :: 6]
        elif record_size == 28:
            lefts[0::4] = node[3::7].translate(_HIGH_NIBBLE)
            rights[0::4] = node[3::7].translate(_LOW_NIBBLE)
            for byte in (1, 2, 3):
                lefts[byte::4] = node[byte - 1 :: 7]
                rights[byte::4] = node[byte + 3 :: 7]
        else:
            for byte in (0, 1, 2, 3):
                lefts[byte::4] = node[byte::8]
                rights[byte::4] = node[byte + 4 :: 8]
        left.frombytes(lefts)
        right.frombytes(rights)
        remaining -= count
    if sys.byteorder == "little":
        left.byteswap()
        right.byteswap()
    return left, right


class SearchTree:
    """The records of every node, plus tables for the first STRIDE bits of each family.

    Read-only once built, so any number of threads can walk it (the Python walk's kept IPv6
    nodes are dicts, whose single operations are atomic).

    ``leaf(ip) -> record`` is the record the walk for ``ip`` ends on: node_count (not found) or
    a data pointer. An IPv6 ``ip`` needs an IPv6 tree. A data pointer is not checked here:
    :meth:`check` it once per distinct pointer. Raises TreeError when the address bits run out
    on a node.

    ``leaf_prefix(ip) -> (record, prefix_len)`` is the same record, plus the number of address
    bits (of ``ip``'s own family) the walk read: every address sharing those first bits ends
    on the same record. It is STRIDE when the table entry is already a leaf, which may be
    longer than the network's own prefix, never shorter.

    Both are the compiled walk (geofence.hotpath._native) when it is loaded and the Python one
    otherwise, chosen here once rather than tested on every call.
    """

    __slots__ = (
        "_children",
        "_data_end",
        "_kept",
        "_v4",
        "_v6",
        "data",
        "leaf",
        "leaf_prefix",
        "node_count",
    )

    leaf: Callable[[IP], int]
    leaf_prefix: Callable[[IP], tuple[int, int]]

    def __init__(
        self,
        children: Children,
        *,
        node_count: int,
        record_size: int,
        ip_version: int,
        file_size: int,
    ) -> None:
        if len(children[0]) < node_count or len(children[1]) < node_count:
            raise ValueError("the search tree arrays hold fewer than node_count nodes")
        self._children = children
        self.node_count = node_count
        # (the file's bytes, where its data section starts) when the database reads records
        # in place (geofence.geoip._mmdb): set by whoever mapped the file.
        self.data: tuple[mmap, int] | None = None
        # A data pointer is node_count + SEPARATOR + an offset into the data section, and
        # both readers decode up to the end of the file.
        self._data_end = node_count + file_size - node_count * record_size // 4
        self._v6: array[int] | None = None
        # See _KEPT_SIZE; dict operations are atomic, so threads can share them.
        self._kept: tuple[dict[int, int], dict[int, int], dict[int, int]] = ({}, {}, {})
        start = 0
        if ip_version == 6:
            self._v6 = self._table(0)
            # IPv4 addresses are ::a.b.c.d, 96 zero bits down (both readers start there).
            for _ in range(96):
                if start >= node_count:
                    break
                start = children[0][start]
        self._v4 = self._table(start)
        if NATIVE is None:
            self.leaf = self._leaf_python
            self.leaf_prefix = self._leaf_prefix_python
        else:
            self.leaf, self.leaf_prefix = self.native_walks()

    def _table(self, start: int) -> array[int]:
        """Where the walk from ``start`` is after STRIDE more bits, for each of their values."""
        children = self._children
        count = self.node_count
        table = array(_TYPECODE, bytes(4 << STRIDE))
        # Depth first, and a leaf fills its whole span at once: the work is the number of
        # nodes in the top STRIDE levels, a few hundred in a small test database.
        pending = [(start, 0, 0)]  # (node, bits walked, their value)
        while pending:
            node, depth, bits = pending.pop()
            if node < count and depth < STRIDE:
                pending.append((children[0][node], depth + 1, bits << 1))
                pending.append((children[1][node], depth + 1, bits << 1 | 1))
            elif depth == STRIDE:
                table[bits] = node
            else:
                below = STRIDE - depth
                table[bits << below : (bits + 1) << below] = array(_TYPECODE, [node]) * (1 << below)
        return table

    def _leaf_python(self, ip: IP) -> int:
        return self._leaf_prefix_python(ip)[0]

    def _leaf_prefix_python(self, ip: IP) -> tuple[int, int]:
        value = ip.value
        count = self.node_count
        children = self._children
        if ip.version == 4:
            node, depth, width = self._v4[value >> (32 - STRIDE)], STRIDE, 32
        else:
            assert self._v6 is not None, "an IPv6 address in an IPv4 tree"
            width = 128
            # Start from the deepest node kept for these first bits (see _KEPT_SIZE), else
            # from the table.
            at24, at32, at40 = self._kept
            top = value >> 88  # the first 40 bits: the keys are shifts of a small int
            kept_node = at40.get(top)
            if kept_node is not None:
                node, depth = kept_node, 40
            else:
                kept_node = at32.get(top >> 8)
                if kept_node is not None:
                    node, depth = kept_node, 32
                else:
                    kept_node = at24.get(top >> 16)
                    if kept_node is not None:
                        node, depth = kept_node, 24
                    else:
                        node, depth = self._v6[top >> 24], STRIDE
                # Down to 40 bits, keeping the node reached after 24, 32 and 40.
                while depth < 40 and node < count:
                    bits = iter(_BYTE_BITS[top >> (32 - depth) & 255])
                    for bit in bits:
                        node = children[bit][node]
                        if node >= count:
                            return node, depth + 8 - _left(bits)
                    depth += 8
                    kept = self._kept[(depth - 24) >> 3]
                    if len(kept) >= _KEPT_SIZE:
                        kept.clear()  # bounded: a burst of longer walks, then kept again
                    kept[top >> (40 - depth)] = node
        # Eight levels per table load, one index per level: faster than shifting the address
        # once per level. The exit's depth comes from what the iterator has left (read once,
        # at the exit), which costs less than counting the levels.
        while node < count:
            if depth == width:
                raise TreeError(_RAN_OUT)
            bits = iter(_BYTE_BITS[value >> (width - 8 - depth) & 255])
            for bit in bits:
                node = children[bit][node]
                if node >= count:
                    return node, depth + 8 - _left(bits)
            depth += 8
        return node, depth

    def native_walks(self) -> tuple[Callable[[IP], int], Callable[[IP], tuple[int, int]]]:
        """``leaf`` and ``leaf_prefix`` through geofence.hotpath._native.walk (which must be
        loaded).

        Closures rather than methods: what they need is in local cells, so a call costs one
        Python frame, a tuple unpack and one call into C, about a tenth of the Python walk.
        """
        left, right = self._children
        v4, v6, count = self._v4, self._v6, self.node_count
        walk = _walk

        def leaf_native(ip: IP) -> int:
            version = ip[1]
            if version == 4:
                record = walk(left, right, v4, count, ip[2], 32, STRIDE)[0]
            else:
                assert v6 is not None, "an IPv6 address in an IPv4 tree"
                record = walk(left, right, v6, count, ip[2], 128, STRIDE)[0]
            if record < 0:
                raise TreeError(_RAN_OUT)
            return record

        def leaf_prefix_native(ip: IP) -> tuple[int, int]:
            version = ip[1]
            if version == 4:
                found = walk(left, right, v4, count, ip[2], 32, STRIDE)
            else:
                assert v6 is not None, "an IPv6 address in an IPv4 tree"
                found = walk(left, right, v6, count, ip[2], 128, STRIDE)
            if found[0] < 0:
                raise TreeError(_RAN_OUT)
            return found

        return leaf_native, leaf_prefix_native

    def finder(
        self,
        answers: dict[int, T],
        slow: Callable[[IP], tuple[T, int]],
        *,
        ipv6: bool,
        decode: Callable[[int, IP], T] | None = None,
    ) -> Callable[[IP], tuple[T, int]]:
        """A ``find_prefix`` for a database on this tree: ``geofence.hotpath._native.Finder`` when
        loaded (the walk and ``answers[record]`` in one C call, ``slow`` for anything else:
        a record not decoded yet, a damaged tree, IPv6 unless ``ipv6``), else ``slow`` itself.
        ``decode(record, ip)``, when given, answers a record not decoded yet instead of
        ``slow``, for the walk already made (it must store what it decodes in ``answers``).

        The Finder holds the arrays exported for its life; they are never resized anyway.
        """
        if NATIVE is None:
            return slow
        left, right = self._children
        v6 = self._v6 if ipv6 else None
        found: Callable[[IP], tuple[T, int]] = NATIVE.Finder(
            left, right, self._v4, v6, self.node_count, STRIDE, answers, slow, decode
        )
        return found

    def check(self, pointer: int) -> None:
        """Raise TreeError unless ``pointer`` (> node_count) leads into the data section."""
        if pointer < self.node_count + SEPARATOR:
            raise TreeError("a search tree record points into the data section separator")
        if pointer >= self._data_end:
            raise TreeError("a search tree record points past the end of the file")

    def memory(self) -> int:
        """Bytes held by the arrays."""
        arrays = (*self._children, self._v4, *([self._v6] if self._v6 is not None else []))
        return sum(a.itemsize * len(a) for a in arrays)
