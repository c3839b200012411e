"""Real Redis servers for tests: standalone, Unix socket, TLS, a three-node Cluster, Sentinel.

Each runs Debian's ``redis-server`` on loopback in its own temporary directory with
persistence off, is polled until it answers (no fixed sleeps), and is stopped by its PID.
When the binaries are missing the tests fail with the install hint rather than skip: CI
installs them, and a skipped store suite would look like a passing one.

    with redis_server(tmp_path) as server:
        RedisStore(server.url, ...)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INSTALL_HINT = (
    "the Redis store tests need redis-server and redis-cli: "
    "apt-get install redis-server redis-tools (Debian/Ubuntu), brew install redis (macOS)"
)
READY_TIMEOUT = 15.0  # a loaded CI machine; a healthy server answers in milliseconds
STOP_TIMEOUT = 10.0


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINT if name.startswith("redis") else f"apt-get install {name}"
        pytest.fail(f"{name} not found: {hint}", pytrace=False)
    return path


def argv(template: str, **values: object) -> list[str]:
    """A command line from a template, each word formatted on its own (paths may hold spaces)."""
    return [word.format(**values) for word in template.split()]


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


@dataclass
class RedisServer:
    """One redis-server process. ``pause``/``resume`` make it a black hole (SIGSTOP: the
    kernel still accepts connections, nothing answers), ``kill``/``start`` an outage."""

    directory: Path
    port: int | None
    unix_path: Path | None = None
    tls: TLSFiles | None = None
    extra: Sequence[str] = ()
    argv: Sequence[str] | None = None  # the whole command line instead (a sentinel)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    paused: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        if self.argv is not None:
            return list(self.argv)
        # --save "" (persistence off) is an empty argument, which a template cannot hold.
        args = [binary("redis-server"), "--save", ""]
        args += argv(
            "--bind 127.0.0.1 --appendonly no --dir {dir} --logfile {dir}/redis.log",
            dir=self.directory,
        )
        if self.tls is not None:
            args += argv(
                "--port 0 --tls-port {port} --tls-cert-file {tls.cert} --tls-key-file {tls.key}"
                " --tls-ca-cert-file {tls.ca} --tls-auth-clients optional",
                port=self.port,
                tls=self.tls,
            )
        else:
            args += argv("--port {port}", port=self.port or 0)
        if self.unix_path is not None:
            args += argv("--unixsocket {path} --unixsocketperm 700", path=self.unix_path)
        return [*args, *self.extra]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.paused = False
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.answers_ping():
                return
            assert self.process is not None
            try:
                # Both the pause between attempts and the check that it did not exit.
                self.process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
            else:
                pytest.fail(f"redis-server exited at startup: {self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer: {self.log_tail()}", pytrace=False)

    def answers_ping(self) -> bool:
        try:
            with self.connect(timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                # -NOAUTH from a server with a password: it answers all the same
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def connect(self, timeout: float) -> socket.socket:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            try:
                sock.connect(str(self.unix_path))
            except OSError:
                sock.close()
                raise
            return sock
        assert self.port is not None
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.tls is None:
            return sock
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        return context.wrap_socket(sock, server_hostname="localhost")

    def log_tail(self) -> str:
        log = self.directory / "redis.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        if self.process is not None and self.process.stderr and self.process.poll() is not None:
            text += self.process.stderr.read().decode(errors="replace")
        return text[-2000:] or "(no output)"

    def pause(self) -> None:
        if self.paused:
            return  # a second SIGSTOP would report no stop to wait for
        os.kill(self.pid, signal.SIGSTOP)
        # A signal arrives asynchronously: on a loaded machine the server could still answer
        # a request sent right after kill() returns. Our child's stop is reported to us.
        os.waitpid(self.pid, os.WUNTRACED)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """Gone at once, as after a crash (SIGKILL), its port free for :meth:`start`."""
        assert self.process is not None
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)
        if self.process.stderr:
            self.process.stderr.close()

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if process.stderr:
            process.stderr.close()

    def cli(self, *args: str) -> str:
        """Run redis-cli against this server and return its output (raises on failure)."""
        target = ["-s", str(self.unix_path)] if self.unix_path else ["-p", str(self.port)]
        if self.tls is not None:
            target += ["--tls", "--cacert", str(self.tls.ca)]
        result = subprocess.run(
            [binary("redis-cli"), "-h", "127.0.0.1", *target, *args],
            capture_output=True,
            check=True,
            timeout=READY_TIMEOUT,
        )
        return result.stdout.decode()


@contextmanager
def redis_server(
    directory: Path,
    *,
    unix: bool = False,
    tls: TLSFiles | None = None,
    extra: Sequence[str] = (),
) -> Iterator[RedisServer]:
    """A running redis-server; a port that another process took meanwhile gets another try."""
    directory.mkdir(parents=True, exist_ok=True)
    unix_path = None
    if unix:
        # A socket path is limited to about 100 bytes, and pytest's temp paths can be longer.
        unix_path = Path(tempfile.mkdtemp(prefix="geofence-redis-")) / "redis.sock"
    for attempt in range(3):
        server = RedisServer(directory, None if unix else free_port(), unix_path, tls, extra)
        try:
            server.start()
        except pytest.fail.Exception:
            taken = "Address already in use" in server.log_tail()
            server.stop()
            if attempt == 2 or not taken:
                raise
            continue
        break
    try:
        yield server
    finally:
        server.stop()
        if unix_path is not None:
            shutil.rmtree(unix_path.parent, ignore_errors=True)


def make_tls_files(directory: Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, made with openssl."""
    openssl = binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(
        ca=directory / "ca.crt",
        cert=directory / "server.crt",
        key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

    def run(template: str, **values: object) -> None:
        command = [openssl, *argv(template, **values)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    ca_key = directory / "ca.key"
    run(
        # The extensions a strict verifier asks of a CA (Python 3.13 turns on
        # VERIFY_X509_STRICT): critical basicConstraints and keyUsage, a key identifier.
        f"req -x509 {ec} -keyout {{key}} -out {{ca}} -days 2 -subj /CN=test-ca"
        " -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign"
        " -addext subjectKeyIdentifier=hash",
        key=ca_key,
        ca=files.ca,
    )
    for name, cert, key, usage in (
        ("localhost", files.cert, files.key, "serverAuth"),
        ("client", files.client_cert, files.client_key, "clientAuth"),
    ):
        request, extensions = key.with_suffix(".csr"), key.with_suffix(".ext")
        extensions.write_text(
            f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        run(f"req -new {ec} -keyout {{key}} -out {{csr}} -subj /CN={name}", key=key, csr=request)
        run(
            "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 2"
            " -extfile {ext}",
            csr=request,
            ca=files.ca,
            ca_key=ca_key,
            cert=cert,
            ext=extensions,
        )
    return files


@dataclass
class RedisCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)


@contextmanager
def redis_cluster(directory: Path, size: int = 3) -> Iterator[RedisCluster]:
    """A Cluster of ``size`` primaries (no replicas) with every slot assigned."""
    with ExitStack() as stack:
        nodes = [
            stack.enter_context(
                redis_server(
                    directory / f"node{i}",
                    extra=argv(
                        "--cluster-enabled yes --cluster-node-timeout 5000"
                        " --cluster-config-file {dir}/nodes.conf --cluster-port {bus}",
                        dir=directory / f"node{i}",
                        # the default, port + 10000, may be out of range or taken
                        bus=free_port(),
                    ),
                )
            )
            for i in range(size)
        ]
        create = ["--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes)]
        create += argv("--cluster-replicas 0 --cluster-yes")
        subprocess.run([binary("redis-cli"), *create], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + READY_TIMEOUT
        for node in nodes:
            while "cluster_state:ok" not in node.cli("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    pytest.fail(f"the cluster did not come up: {node.cli('CLUSTER', 'INFO')}")
                _pause(node)
        yield RedisCluster(nodes)


@dataclass
class Sentinel:
    server: RedisServer  # the sentinel process itself
    master: RedisServer
    service: str

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.server.port}/{self.service}/0"


@contextmanager
def redis_sentinel(
    directory: Path, master: RedisServer, service: str = "geofence"
) -> Iterator[Sentinel]:
    """A Sentinel (``redis-server --sentinel``) that monitors ``master`` as ``service``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"
    # Sentinel rewrites its config file, so it must be a file of its own.
    config.write_text(
        f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
        f"sentinel down-after-milliseconds {service} 60000\n"
    )
    port = free_port()
    command = [binary("redis-server"), str(config), "--sentinel"]
    command += argv(
        "--bind 127.0.0.1 --port {port} --dir {dir} --logfile {dir}/redis.log",
        port=port,
        dir=directory,
    )
    server = RedisServer(directory, port, argv=command)
    server.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while str(master.port) not in server.cli("SENTINEL", "get-master-addr-by-name", service):
            if time.monotonic() > deadline:
                pytest.fail(f"the sentinel does not know {service}: {server.log_tail()}")
            _pause(server)
        yield Sentinel(server, master, service)
    finally:
        server.stop()


def _pause(server: RedisServer) -> None:
    """Wait a little between polls, returning early (with a failure) if the server died."""
    assert server.process is not None
    try:
        server.process.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        return
    pytest.fail(f"redis-server exited: {server.log_tail()}", pytrace=False)
