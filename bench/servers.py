"""Section 4: requests per second behind real servers, bare app vs geofence, on loopback.

Each server gets a socket this process has already bound and put in listen mode (passed as an
inherited file descriptor), so there is no port race and no polling: the first request simply
waits in the accept queue until the server is up. Load comes from ``wrk`` (or, without it,
``loadgen.py``), bounded in time, on 127.0.0.1 only.

The client is a public address in ``X-Forwarded-For`` from a trusted proxy (loopback is trusted
by the example policy): from 127.0.0.1 itself every request would be ``private`` and never
reach a lookup.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import Row
from workload import PATH, REPEATED, policy

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
SECTION = "4. real servers on loopback: requests/s, geofence vs bare"
TARGET = 0.95  # geofence throughput / bare throughput
CONNECTIONS = 16
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sizes:
    seconds: float  # per load run
    pairs: int  # bare/geofence run pairs per server


def _command(server: str, fd: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, str(HERE / "uvicorn_fd.py"), str(fd), "apps:starlette_asgi"]
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1",
        "--worker-class", "sync", "--log-level", "warning", "apps:flask_wsgi",
    ]  # fmt: skip


@contextmanager
def serve(server: str, config: dict[str, Any] | None) -> Iterator[int]:
    """Run the bench app under ``server`` (with geofence when ``config``); yield its port."""
    env = dict(os.environ)
    paths = [str(HERE), str(PROJECT / "adapters"), str(PROJECT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["GEOFENCE_BENCH_CONFIG"] = json.dumps(config) if config is not None else ""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener, tempfile.TemporaryFile() as output:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        process = subprocess.Popen(
            _command(server, listener.fileno()),
            cwd=HERE,
            env=env,
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        listener.close()  # the server holds its own copy; a dead server now refuses at once
        try:
            yield port
        except BaseException:
            output.seek(0)
            sys.stderr.write(output.read().decode("utf-8", "replace")[-4000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _status(port: int, client: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=START_TIMEOUT)
    try:
        connection.request("GET", PATH, headers={"X-Forwarded-For": client})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "loadgen.py"


def _load(port: int, seconds: float) -> float:
    """Requests per second over ``seconds`` with CONNECTIONS keep-alive connections."""
    url = f"http://127.0.0.1:{port}{PATH}"
    header = f"X-Forwarded-For: {REPEATED}"
    if shutil.which("wrk"):
        out = subprocess.run(
            # wrk takes whole seconds only ("-d1.5s" is a usage error).
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{math.ceil(seconds)}s", "-H", header, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad:
            raise RuntimeError(f"{bad.group(1)} error responses during the load run:\n{out}")
        match = re.search(r"Requests/sec:\s*([0-9.]+)", out)
        if match is None:
            raise RuntimeError(f"cannot read wrk's output:\n{out}")
        return float(match.group(1))
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), url, f"{seconds:g}", str(CONNECTIONS), header],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = dict(item.split("=") for item in out.split())
    if int(fields["errors"]):
        raise RuntimeError(f"load generator errors: {out}")
    return int(fields["requests"]) / float(fields["seconds"])


def server_rows(db_path: str, blocked: str, sizes: Sizes) -> list[Row]:
    config = policy(db_path)
    rows: list[Row] = []
    for server, framework in (("uvicorn", "Starlette"), ("gunicorn", "Flask")):
        with serve(server, None) as bare, serve(server, config) as fenced:
            got = (_status(bare, blocked), _status(fenced, blocked), _status(fenced, REPEATED))
            if got != (200, 451, 200):
                raise RuntimeError(f"{server}: statuses {got}, expected (200, 451, 200)")
            warm = min(1.0, sizes.seconds)
            _load(bare, warm)
            _load(fenced, warm)
            bare_rps: list[float] = []
            fenced_rps: list[float] = []
            for index in range(sizes.pairs * 2):
                # bare, geofence, geofence, bare, ...: each gets the same share of early and
                # late positions.
                if index % 4 in (0, 3):
                    bare_rps.append(_load(bare, sizes.seconds))
                else:
                    fenced_rps.append(_load(fenced, sizes.seconds))
        ratios = [f / b for b, f in zip(bare_rps, fenced_rps, strict=True)]
        ratio = statistics.median(ratios)
        label = (
            f"{server} 1 worker ({framework}), {CONNECTIONS} connections, "
            f"{sizes.pairs} x {sizes.seconds:g} s each"
        )
        rows.append(
            Row(
                SECTION,
                label,
                f"{ratio * 100:.1f} %",
                f"bare {statistics.median(bare_rps):,.0f} req/s, "
                f"geofence {statistics.median(fenced_rps):,.0f} req/s ({load_tool()}); "
                f"per-pair ratios {min(ratios) * 100:.0f}-{max(ratios) * 100:.0f} %",
                f">= {TARGET * 100:.0f} % of bare",
                ratio >= TARGET,
                {
                    "ratio": round(ratio, 4),
                    "bare_rps": round(statistics.median(bare_rps), 1),
                    "geofence_rps": round(statistics.median(fenced_rps), 1),
                },
            )
        )
    return rows
