# The named-tuple builders in C; loaded through geofence._speedups.TUPLES.
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])

def new(cls: type[T], items: tuple[Any, ...], /) -> T: ...
def with_tail(cls: type[T], base: tuple[Any, ...], /, *tail: object) -> T: ...
