"""A bad policy stops uvicorn and hypercorn before they serve (DESIGN "Startup").

Real server processes on loopback with the servers' default flags: the middleware wrapped
directly (built when the app module is imported) and added with Starlette's and FastAPI's
``add_middleware`` (built inside the app's first ASGI call, the lifespan startup, where the
servers would take a raised ConfigError for "lifespan unsupported" and serve a 500 to every
request). Each server must exit on its own within EXIT_TIMEOUT, with the ConfigError's text.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import pytest
from servers import serve

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytestmark = pytest.mark.server

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
APP = "asgi_startup_app:app"
MISSING_APP = "no_such_module_for_geofence:app"
KINDS = ["direct", "starlette", "fastapi"]
BAD = {"rules": [{"action": "block", "regions": ["UK"]}]}
MESSAGE = "rules[0].regions[0]: 'UK' is not an ISO 3166-1 code (did you mean 'GB'?)"
# For all the servers together: each refuses within seconds, and one that starts would run on.
EXIT_TIMEOUT = 30.0
# What uvicorn and hypercorn log when a lifespan startup raises instead of failing.
STARTED_ANYWAY = ("appears unsupported", "continuing without Lifespan support")


def command(server: str, app: str, extra: Sequence[str]) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0", *extra]
    return [sys.executable, "-m", "hypercorn", app, "--bind", "127.0.0.1:0", *extra]


def environment(kind: str, config: Mapping[str, object]) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(PROJECT / "adapters"), str(PROJECT), str(HERE)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env.update(GEOFENCE_TEST_APP=kind, GEOFENCE_TEST_CONFIG=json.dumps(config))
    return env


class Runs:
    """Server processes started together, each run until it exits on its own.

    Every server runs in a process group of its own (hypercorn's worker is a child process);
    whatever is left of a group at teardown is killed by its id.
    """

    def __init__(self) -> None:
        self.deadline = time.monotonic() + EXIT_TIMEOUT
        self.processes: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        self.files = ExitStack()

    def start(self, server: str, kind: str, *extra: str, app: str = APP) -> None:
        packages = (server,) if kind == "direct" else (server, kind)
        if any(importlib.util.find_spec(package) is None for package in packages):
            return  # its result() skips
        output = self.files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (ExitStack)
        process = subprocess.Popen(
            command(server, app, extra),
            cwd=HERE,
            env=environment(kind, BAD),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[(server, kind, app, *extra)] = (process, output)

    def result(self, server: str, kind: str, *extra: str, app: str = APP) -> tuple[int, str]:
        """The exit status and the output (stdout and stderr) of a server started before."""
        key = (server, kind, app, *extra)
        if key not in self.processes:
            pytest.skip(f"{server} or {kind} is not installed")
        process, output = self.processes[key]
        try:
            process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop(process)
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
        if process.returncode < 0:
            pytest.fail(f"{server} ({kind}) kept serving with a bad policy:\n{text}")
        return process.returncode, text

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    """Every server of this module with a bad policy, started at once (each takes a second)."""
    runs = Runs()
    for kind in KINDS:
        runs.start("uvicorn", kind)
        runs.start("hypercorn", kind)
        runs.start("hypercorn", kind, "--workers", "0")
    runs.start("hypercorn", "direct", app=MISSING_APP)
    with runs.files:
        try:
            yield runs
        finally:
            for process, _ in runs.processes.values():
                runs.stop(process)


@pytest.fixture(scope="module")
def hypercorn_keeps_exit_status(runs: Runs) -> bool:
    """Whether hypercorn's exit status says that its worker failed to start.

    With its default flags (one worker process) hypercorn up to 0.18 exits 0 when the worker
    fails, whatever the cause (hypercorn issue #269): an app module that does not exist shows it.
    """
    status, _ = runs.result("hypercorn", "direct", app=MISSING_APP)
    return status != 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_bad_policy_stops_the_server(
    server: str, kind: str, runs: Runs, request: pytest.FixtureRequest
) -> None:
    status, output = runs.result(server, kind)
    assert MESSAGE in output
    assert not any(words in output for words in STARTED_ANYWAY)
    if server == "hypercorn" and not request.getfixturevalue("hypercorn_keeps_exit_status"):
        return  # the worker stopped with the error; hypercorn's status cannot say so
    assert status != 0


@pytest.mark.parametrize("kind", KINDS)
def test_bad_policy_stops_single_process_hypercorn_with_non_zero_status(
    kind: str, runs: Runs
) -> None:
    status, output = runs.result("hypercorn", kind, "--workers", "0")
    assert MESSAGE in output
    assert status != 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_apps_serve_with_a_good_policy(kind: str) -> None:
    if kind == "fastapi":
        pytest.importorskip("fastapi")
    env = {"GEOFENCE_TEST_APP": kind, "GEOFENCE_TEST_CONFIG": json.dumps({})}
    with serve("uvicorn", APP, cwd=HERE, env=env) as base:
        response = httpx.get(base + "/v1/models", timeout=10)
    assert (response.status_code, response.text) == (200, "hello")


@pytest.mark.parametrize("kind", ["starlette", "fastapi"])
def test_without_lifespan_every_request_is_refused(kind: str, tmp_path: Path) -> None:
    """``--lifespan off``: nothing can stop the server, so nothing reaches the app."""
    if kind == "fastapi":
        pytest.importorskip("fastapi")
    reached = tmp_path / "reached"
    env = {
        "GEOFENCE_TEST_APP": kind,
        "GEOFENCE_TEST_CONFIG": json.dumps(BAD),
        "GEOFENCE_TEST_REACHED": str(reached),
    }
    with (
        serve("uvicorn", APP, cwd=HERE, env=env, extra_args=["--lifespan", "off"]) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        responses = [client.get("/v1/models"), client.post("/", content=b"x"), client.get("/")]
    assert [r.status_code for r in responses] == [500, 500, 500]
    assert all(r.text == "Internal Server Error" for r in responses)  # no policy text leaked
    assert not reached.exists()
