"""The ``geofence`` logger imports :mod:`logging` only when something is logged.

Each case is a fresh interpreter (this test process has ``logging`` loaded, by pytest): a block
on the embedded default, then what ``sys.modules`` and stderr show.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geofence import _logs

PRELUDE = r"""
import json, sys
import geofence
engine = geofence.Engine.from_config(
    {"rules": [{"name": "us", "action": "block", "regions": ["US"]}]}
)
def block():
    request = geofence.RequestInfo(peer="216.160.83.56", path="/p")
    decision = engine.decide(request)
    assert decision.action == "block" and decision.enforced, decision
    engine.answer(request)
"""


def _run(body: str) -> tuple[dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + body],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_block_in_a_process_without_logging_imports_nothing_and_prints_nothing() -> None:
    found, stderr = _run('block()\nprint(json.dumps({"logging": "logging" in sys.modules}))')
    assert found == {"logging": False}
    assert stderr == ""


def test_a_warning_imports_logging_and_reaches_the_last_resort_handler() -> None:
    found, stderr = _run(
        "from geofence._logs import logger\n"
        "logger.warning('the database is %s days old', 40)\n"
        'print(json.dumps({"logging": "logging" in sys.modules}))'
    )
    assert found == {"logging": True}
    assert stderr == "the database is 40 days old\n"


def test_logging_configured_after_the_engine_gets_the_block_lines() -> None:
    found, stderr = _run(
        "block()\n"
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')\n"
        "block()\n"
        'print(json.dumps({"logging": True}))'
    )
    assert found == {"logging": True}
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr  # the first block, before basicConfig, was not logged
    assert lines[0].startswith("geofence INFO block ref=")
    assert 'path="/p"' in lines[0]


@pytest.mark.parametrize(("level", "enabled"), [(10, False), (20, False), (30, True), (40, True)])
def test_without_logging_only_warnings_and_above_are_enabled(
    level: int, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = _logs.LazyLogger("geofence.lazy-test")
    monkeypatch.delitem(sys.modules, "logging")
    assert lazy.isEnabledFor(level) is enabled
    assert "logging" not in sys.modules  # asking did not import it


def test_with_logging_the_real_logger_decides(caplog: pytest.LogCaptureFixture) -> None:
    lazy = _logs.LazyLogger("geofence.lazy-test")
    with caplog.at_level(10, logger="geofence.lazy-test"):
        assert lazy.isEnabledFor(10)
        lazy.debug("seen %d", 1)  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records] == ["seen 1"]
    assert lazy.name == "geofence.lazy-test"  # type: ignore[attr-defined]
