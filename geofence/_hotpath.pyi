"""Stub of geofence/_hotpath.c: the engine's decision-cache hit path in C.

The behaviour is that of the Python twin, geofence._probe.Probe (see there).
"""

from collections.abc import Callable
from typing import Any, Generic, TypeVar, final

from geofence._model import RequestInfo

D = TypeVar("D")
A = TypeVar("A")

@final
class Probe(Generic[D, A]):
    def __init__(
        self, cache: dict[Any, tuple[Any, D, Any, A]], clock: Callable[[], float]
    ) -> None: ...
    def set(self, start: float, end: float, epoch: object, /) -> None: ...
    def decision(self, request: RequestInfo, /) -> D | None: ...
    def answer(self, peer: object, method: object, path: object, /) -> A | None: ...
    def entry(self, request: RequestInfo, /) -> tuple[Any, D, Any, A] | None: ...
