"""Hatchling build hook: compile geofence's C speed-ups into the wheel when a compiler is there.

Each ``.c`` file under ``geofence/`` is one module named for its path (geofence/hotpath/_native.c is
``geofence.hotpath._native``), and an optional one: geofence/hotpath/__init__.py loads it when
present, and without it every caller uses its Python path. So a failed compile (no compiler, no
Python headers, anything else) is one warning line on stderr and a wheel without that module, never
a failed install; with none compiled the wheel is pure Python (py3-none-any).
``GEOFENCE_PURE_PYTHON=1`` skips compiling on purpose.

A regular wheel gets each compiled module through ``force_include`` and a platform tag; an
editable install (``pip install -e .``) imports from the source tree, so the modules are built
in place next to their .c files (git ignores them).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "geofence"
ENV_PURE = "GEOFENCE_PURE_PYTHON"


def _compile(module: str, source: Path, work: Path) -> Path:
    """Build ``module`` from ``source`` with setuptools' build_ext; the built file's path."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(module, sources=[str(source)])
    command = build_ext(Distribution({"name": "geofence-speedups", "ext_modules": [extension]}))
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "temp")
    command.ensure_finalized()
    command.run()
    built = Path(command.get_ext_fullpath(module))
    if not built.is_file():
        raise FileNotFoundError(built)
    return built


class SpeedupsBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._work: str | None = None
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        sources = sorted((root / PACKAGE).rglob("*.c"))
        if os.environ.get(ENV_PURE, "") not in ("", "0"):
            print(f"geofence: {ENV_PURE} is set, not compiling the C speed-ups", file=sys.stderr)
            for source in sources:
                self._drop_stale(source, version)
            return
        self._work = tempfile.mkdtemp(prefix="geofence-speedups-")
        failed: list[str] = []
        reason = ""
        for source in sources:
            where = source.relative_to(root).with_suffix("")
            module = ".".join(where.parts)
            try:
                built = _compile(module, source, Path(self._work) / source.stem)
            except (Exception, SystemExit) as error:  # any failure at all: go without it
                failed.append(where.as_posix() + ".c")
                detail = " ".join(str(error).split()) or "no detail"
                reason = reason or f"{type(error).__name__}: {detail}"
                self._drop_stale(source, version)
                continue
            if version == "editable":
                # The editable wheel points at the source tree, so the module goes there.
                shutil.copy(built, source.parent / built.name)
                continue
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(built)] = f"{where.parent.as_posix()}/{built.name}"
        if failed:
            # One line, however many modules: without a compiler they all fail the same way.
            print(
                f"WARNING: geofence: could not compile {', '.join(failed)} ({reason}); "
                "using the pure-Python code instead",
                file=sys.stderr,
            )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)

    @staticmethod
    def _drop_stale(source: Path, version: str) -> None:
        """An editable install built without a module must not import an older build of it."""
        if version != "editable":
            return  # a regular wheel never takes an in-place module (.gitignore excludes it)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        (source.parent / f"{source.stem}{suffix}").unlink(missing_ok=True)
