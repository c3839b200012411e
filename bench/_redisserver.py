"""A redis-server for the account benchmarks: loopback, persistence off, stopped by its PID.

The same recipe as the tests' ``tests/helpers/redis_servers.py``, without pytest: start it on
a free port, poll until it answers (no fixed sleep), ``pause`` (SIGSTOP: the kernel still
accepts connections and nothing answers, a black hole) and ``resume``, ``stop``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 15.0


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisProcess:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


@contextmanager
def redis_server() -> Iterator[RedisProcess]:
    """A running redis-server on 127.0.0.1, stopped (by its PID) on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="geofence-bench-redis-") as tmp:
        directory = Path(tmp)
        port = free_port()
        argv = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--logfile", str(directory / "redis.log"),
        ]  # fmt: skip
        server = RedisProcess(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            port,
            directory,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not server.answers():
                try:
                    server.process.wait(timeout=0.02)  # the pause between polls
                except subprocess.TimeoutExpired:
                    pass
                else:
                    raise RuntimeError(f"redis-server exited at startup: {server.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer: {server.log()}")
            yield server
        finally:
            server.stop()
