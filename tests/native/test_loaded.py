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


@pytest.mark.skipif(NATIVE is None, reason="geofence.hotpath._native is not built")
def test_the_step_decides_without_the_module_it_borrows_from(tmp_path: Path) -> None:
    """geofence.hotpath._miss borrows _native's parser and finder through a capsule; when
    _native cannot load, the step is still made and calls Python's objects instead."""
    from tests_support import COUNTRY_DB

    from geofence import Engine, RequestInfo

    config = {
        "default": "allow",
        "geoip": {"country_db": COUNTRY_DB},
        "rules": [
            {"name": "gb", "action": "block", "regions": ["GB"]},
            {"name": "se", "action": "warn", "regions": ["SE"]},
        ],
    }
    peers = ["81.2.69.160", "2a02:cfc0::1", "89.160.20.112", "2001:218::1", "1.1.1.1"]
    code = (
        "import sys, json\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'geofence.hotpath._native':\n"
        "            raise ImportError('blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from geofence import Engine, RequestInfo\n"
        "from geofence import hotpath\n"
        "config, peers = json.loads(sys.argv[1])\n"
        "engine = Engine.from_config(config)\n"
        "assert engine._miss is not None and hotpath.NATIVE is None\n"
        "step, served = engine._miss, []\n"
        "engine._miss = lambda *a: served.append(step(*a)) or served[-1]\n"
        "out = [engine.decide(RequestInfo(p, {}, 'GET', '/')).action for p in peers]\n"
        "print(json.dumps([out, sum(s is not None for s in served)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps([config, peers])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    actions, served = json.loads(done.stdout)
    engine = Engine.from_config(config)
    assert actions == [engine.decide(RequestInfo(p, {}, "GET", "/")).action for p in peers]
    assert {"block", "warn", "allow"} <= set(actions)
    assert served >= 3  # most of them decided by the step, not left to Python
