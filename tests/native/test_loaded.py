"""Which build is running: CI says what it expects, so a silently failed compile fails CI.

tox sets GEOFENCE_EXPECT_NATIVE=1 in the envs that test the compiled build and
GEOFENCE_PURE_PYTHON=1 in the one that tests the pure-Python fallback (see tox.ini).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geofence import hotpath as _speedups
from geofence.hotpath import NATIVE

PURE = os.environ.get("GEOFENCE_PURE_PYTHON", "") not in ("", "0")
EXPECT_NATIVE = os.environ.get("GEOFENCE_EXPECT_NATIVE", "") not in ("", "0")


@pytest.mark.skipif(
    not EXPECT_NATIVE or PURE,
    reason="GEOFENCE_EXPECT_NATIVE=1 is not set (or GEOFENCE_PURE_PYTHON is): "
    "no build is expected here",
)
def test_the_compiled_build_is_loaded_when_ci_expects_it() -> None:
    assert NATIVE is not None, (
        "GEOFENCE_EXPECT_NATIVE=1 but geofence.hotpath._native did not load: "
        "the wheel was built without the extension (see the build log's geofence warning)"
    )
    assert NATIVE.__name__ == "geofence.hotpath._native"
    assert callable(NATIVE.walk)
    assert callable(NATIVE.parse)


@pytest.mark.skipif(not PURE, reason="GEOFENCE_PURE_PYTHON is not set")
def test_the_pure_python_build_runs_when_asked() -> None:
    assert NATIVE is None
    assert _speedups.NATIVE is None


def _loaded(env_value: str | None, cwd: Path, *, block_import: bool = False) -> object:
    """_speedups.NATIVE's module name in a fresh interpreter with this GEOFENCE_PURE_PYTHON.

    Run in ``cwd``, an empty folder, so that it imports the geofence this test imports (an
    installed wheel under tox), not the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "GEOFENCE_PURE_PYTHON"}
    if env_value is not None:
        env["GEOFENCE_PURE_PYTHON"] = env_value
    block = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'geofence.hotpath._native':\n"
        "            raise ImportError('blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    code = (block if block_import else "") + (
        "import json\n"
        "from geofence.hotpath import NATIVE\n"
        "print(json.dumps(None if NATIVE is None else NATIVE.__name__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_environment_variable_turns_the_extension_off(tmp_path: Path) -> None:
    available = _loaded(None, tmp_path)
    assert available in (None, "geofence.hotpath._native")
    assert _loaded("1", tmp_path) is None
    assert _loaded("yes", tmp_path) is None
    assert _loaded("0", tmp_path) == available
    assert _loaded("", tmp_path) == available
    if not PURE:
        assert available == (None if NATIVE is None else NATIVE.__name__)


def test_importing_never_fails_when_the_extension_cannot_load(tmp_path: Path) -> None:
    assert _loaded(None, tmp_path, block_import=True) is None
