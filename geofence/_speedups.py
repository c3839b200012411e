"""The compiled hot path, when it is there: :data:`NATIVE` is ``geofence._native`` or None.

``geofence._native`` (geofence/_native.c) is built with the wheel when a C compiler is
present; without one the wheel is pure Python and every caller uses its Python path, which
gives the same answers. Setting ``GEOFENCE_PURE_PYTHON`` to anything but "" or "0" turns the
extension off (read once, at import), e.g. to compare the two or to rule the C code out.
"""

from __future__ import annotations

import os
from types import ModuleType

ENV_PURE = "GEOFENCE_PURE_PYTHON"


def _load() -> ModuleType | None:
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        return None
    try:
        from geofence import _native
    except ImportError:  # not built (no compiler), or built for another Python
        return None
    return _native


NATIVE: ModuleType | None = _load()
