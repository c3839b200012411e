# Every record a search tree leads to, in C; loaded through geofence._speedups.LEAVES.
from array import array

def first(
    left: array[int], right: array[int], node_count: int, start: int, bits: int, limit: int, /
) -> dict[int, tuple[int, int]] | None: ...
