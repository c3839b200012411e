# The compiled hot path (geofence/_native.c); loaded through geofence._speedups.NATIVE.
from array import array

def walk(
    left: array[int],
    right: array[int],
    table: array[int],
    node_count: int,
    value: int,
    bits: int,
    stride: int,
    /,
) -> tuple[int, int]: ...
def parse(text: object, /) -> tuple[int, int] | None: ...
