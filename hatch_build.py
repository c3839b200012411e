"""Hatchling build hook: compile geofence/_native.c into the wheel when a C compiler is present.

The extension is an optional speed-up (geofence/_speedups.py): without it every caller uses its
Python path. So a failed compile (no compiler, no Python headers, anything else) is one warning
line on stderr and a pure-Python wheel, never a failed install. ``GEOFENCE_PURE_PYTHON=1``
skips the compile on purpose.

A regular wheel gets the compiled module through ``force_include`` and a platform tag; an
editable install (``pip install -e .``) imports from the source tree, so the module is built
in place next to the .c file (git ignores it).
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

SOURCE = "geofence/_native.c"
MODULE = "geofence._native"
ENV_PURE = "GEOFENCE_PURE_PYTHON"


def _warn(message: str) -> None:
    print(f"WARNING: geofence: {message}; installing the pure-Python build", file=sys.stderr)


def _compile(source: Path, out_dir: Path, temp_dir: Path) -> Path:
    """Build MODULE from ``source`` with setuptools' build_ext; the path of the built module."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(MODULE, sources=[str(source)])
    command = build_ext(Distribution({"name": "geofence-native", "ext_modules": [extension]}))
    command.build_lib = str(out_dir)
    command.build_temp = str(temp_dir)
    command.ensure_finalized()
    command.run()
    built = Path(command.get_ext_fullpath(MODULE))
    if not built.is_file():
        raise FileNotFoundError(built)
    return built


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._work: str | None = None
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        if os.environ.get(ENV_PURE, "") not in ("", "0"):
            print(f"geofence: {ENV_PURE} is set, not compiling {SOURCE}", file=sys.stderr)
            self._drop_stale(root, version)
            return
        self._work = tempfile.mkdtemp(prefix="geofence-native-")
        try:
            built = _compile(root / SOURCE, Path(self._work) / "lib", Path(self._work) / "temp")
        except (Exception, SystemExit) as error:  # any failure at all means the pure build
            reason = " ".join(str(error).split()) or type(error).__name__
            _warn(f"could not compile {SOURCE} ({type(error).__name__}: {reason})")
            self._drop_stale(root, version)
            return
        if version == "editable":
            # The editable wheel points at the source tree, so the module goes there.
            shutil.copyfile(built, root / "geofence" / built.name)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["force_include"][str(built)] = f"geofence/{built.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)

    @staticmethod
    def _drop_stale(root: Path, version: str) -> None:
        """An editable install that is now pure must not keep importing an older build."""
        if version != "editable":
            return  # a regular wheel never takes the in-place module (.gitignore excludes it)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        (root / "geofence" / f"_native{suffix}").unlink(missing_ok=True)
