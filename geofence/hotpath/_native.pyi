# The compiled hot path (geofence/hotpath/_native.c); loaded through geofence.hotpath.NATIVE.
from array import array
from collections.abc import Callable
from typing import Any, TypeVar

_V = TypeVar("_V")

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
def header_line(
    slow: Callable[[Any, bytes], str | None], raw: object, name: bytes, /
) -> str | None: ...
def ref(
    slow: Callable[..., str],
    keyed: Any,
    client_ip: str | None,
    rule: str | None,
    reason: str,
    account: str | None = None,
    /,
) -> str: ...
def bounded_put(cache: dict[Any, Any], limit: int, key: object, value: _V, /) -> _V: ...

class Finder:
    """A database's ``find_prefix`` for the common case (see geofence/hotpath/_native.c)."""

    def __new__(
        cls,
        left: array[int],
        right: array[int],
        v4: array[int],
        v6: array[int] | None,
        node_count: int,
        stride: int,
        answers: dict[int, Any],
        slow: Callable[[Any], tuple[Any, int]],
        decode: Callable[[int, Any], Any] | None = None,
        /,
    ) -> Finder: ...
    def __call__(self, ip: Any, /) -> tuple[Any, int]: ...
    @property
    def slow(self) -> Callable[[Any], tuple[Any, int]]: ...

class Peers:
    """``parse_peer`` of geofence/clientip/_addresses.py on :func:`parse` (see _native.c)."""

    def __new__(cls, ip_type: type[Any], slow: Callable[[Any], Any], /) -> Peers: ...
    def __call__(self, text: Any, /) -> Any: ...
