"""The compiled hot path, when it is there: :data:`NATIVE` is ``geofence.hotpath._native`` or None.

``geofence.hotpath._native`` (geofence/hotpath/_native.c) is built with the wheel when a C compiler
is present; without one the wheel is pure Python and every caller uses its Python path, which gives
the same answers. Setting ``GEOFENCE_PURE_PYTHON`` to anything but "" or "0" turns the extension off
(read once, at import), e.g. to compare the two or to rule the C code out.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T", bound=tuple[Any, ...])


class NewTuple(Protocol):
    """``tuple.__new__`` as used here: a named-tuple class and an exact tuple of its items."""

    def __call__(self, cls: type[T], items: tuple[Any, ...], /) -> T: ...


ENV_PURE = "GEOFENCE_PURE_PYTHON"


def load(name: str) -> ModuleType | None:
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        return None
    try:
        module: ModuleType = __import__(f"{__name__}.{name}", fromlist=[name])
    except ImportError:  # not built (no compiler), or built for another Python
        return None
    return module


NATIVE: ModuleType | None = load("_native")
#: geofence.hotpath._tuples (geofence/hotpath/_tuples.c): named tuples built in one allocation, or
#: None.
TUPLES: ModuleType | None = load("_tuples")

#: ``tuple.__new__(cls, items)`` for named tuples, which skips their Python-level ``__new__``:
#: in C when built (one allocation, no argument handling: ~1,000 instructions less a call).
new_tuple: NewTuple = cast("NewTuple", TUPLES.new if TUPLES is not None else tuple.__new__)
