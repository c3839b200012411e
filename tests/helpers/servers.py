"""Start a real server (uvicorn or gunicorn) on loopback for end-to-end tests.

Race-free without polling or sleeping: this process binds and listens on 127.0.0.1:0 itself and
hands the listening socket to the server as an inherited file descriptor. Connections made
before the server is ready wait in the kernel's accept queue; once the server process is gone
(including a crash at startup), the last copy of the socket closes and a request fails at once
with a connection error instead of hanging.

    with serve("uvicorn", "myapp:app", cwd=tmp_path) as base_url:
        httpx.get(base_url + "/v1/models")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest

# Generous: a server shutting down gracefully waits for open keep-alive connections.
STOP_TIMEOUT = 10.0
PROJECT = Path(__file__).resolve().parent.parent.parent


def _command(server: str, app: str, fd: int, extra_args: Sequence[str]) -> list[str]:
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--fd",
            str(fd),
            "--log-level",
            "warning",
            "--no-access-log",
            *extra_args,
        ]
    if server == "gunicorn":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"fd://{fd}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            *extra_args,
            app,
        ]
    raise ValueError(f"unknown server {server!r}: use 'uvicorn' or 'gunicorn'")


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    # The adapters are a source folder, not a package: make them importable in the server
    # even when the project is not installed.
    paths = [str(PROJECT / "adapters"), str(PROJECT)]
    if merged.get("PYTHONPATH"):
        paths.append(merged["PYTHONPATH"])
    merged["PYTHONPATH"] = os.pathsep.join(paths)
    merged["PYTHONUNBUFFERED"] = "1"
    if env:
        merged.update(env)
    return merged


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(
    server: Literal["uvicorn", "gunicorn"],
    app: str,
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``app`` ("module:attribute") under ``server``; yield "http://127.0.0.1:PORT".

    A failure inside the block is re-raised with the server's stderr attached, so a traceback
    in the server (an import error, a crash in the app) is visible in the test report.
    """
    pytest.importorskip(server)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener, tempfile.TemporaryFile() as errors:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        process = subprocess.Popen(
            _command(server, app, fd, extra_args),
            cwd=cwd,
            env=_environment(env),
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
        )
        # The server holds its own copy now; closing ours lets a dead server refuse requests.
        listener.close()
        try:
            yield f"http://127.0.0.1:{port}"
        except BaseException as failure:
            _stop(process)
            errors.seek(0)
            output = errors.read().decode("utf-8", "replace").strip()
            if output:
                note = f"--- {server} output ({app}) ---\n{output}"
                if hasattr(failure, "add_note"):  # Python >= 3.11
                    failure.add_note(note)
                else:  # pytest shows a failing test's captured stderr
                    print(note, file=sys.stderr)
            raise
        finally:
            _stop(process)
