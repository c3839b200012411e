"""Stub of geofence/hotpath/_hotpath.c: the engine's decision-cache hit path in C, and the fronts
that stand for Engine.decide and Engine.cached (see geofence.hotpath._probe.front).

The behaviour is that of the Python twin, geofence.hotpath._probe.Probe (see there).
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

@final
class Front:
    def __init__(self, kind: int, slow: Callable[..., Any]) -> None: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., Any]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

def key_type(base: type[tuple[Any, ...]], /) -> type[tuple[Any, ...]]: ...

@final
class Maker:
    def __init__(
        self,
        cls: type[Any],
        params: tuple[str, ...],
        defaults: tuple[object, ...],
        fixed: tuple[tuple[str, object], ...],
        /,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
