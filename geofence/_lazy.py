"""Package re-exports that import their submodule on first use (PEP 562).

A package's ``__init__`` names everything its users import from it, but an engine needs only
a few of its modules: importing all of them at ``import geofence`` costs every process the
memory of code it never runs. A package lists where each public name lives and gets a module
``__getattr__`` and ``__dir__`` from :func:`exports`; ``from package import Name``,
``package.Name`` and ``from package import *`` (through ``__all__``) all keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports(
    package: str, namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of *package*, whose globals are *namespace*;
    *where* maps each lazily exported name to its submodule (``"_memory"``)."""

    def __getattr__(name: str) -> Any:
        submodule = where.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{submodule}"), name)
        namespace[name] = value  # later look-ups are plain module attributes
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
