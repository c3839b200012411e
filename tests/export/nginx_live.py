"""A real nginx (Debian nginx-light + ngx_http_geoip2_module) on loopback, for the export tests.

Loaded by the tests with ``importlib`` from this folder (it is not on ``sys.path``). The
server runs in the foreground (``daemon off``) under a temporary prefix, is started by the
test and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
GEOIP2_MODULE = Path("/usr/lib/nginx/modules/ngx_http_geoip2_module.so")
MISSING = (
    "nginx is not installed"
    if NGINX is None
    else f"{GEOIP2_MODULE} is missing (Debian libnginx-mod-http-geoip2)"
    if not GEOIP2_MODULE.exists()
    else None
)


def _version() -> tuple[int, ...]:
    if NGINX is None:
        return ()
    found = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", found)
    return tuple(int(part) for part in match.groups()) if match else ()


NGINX_VERSION = _version()

MAIN_CONF = """\
load_module {module};
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {http_part};
    server {{
        listen 127.0.0.1:{port};
        include {server_part};
        location / {{
            return 200 "app\\n";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    """A configured prefix: ``conf`` is its nginx.conf, ``log`` the geofence decision log."""

    prefix: Path
    conf: Path
    log: Path
    port: int

    def arguments(self) -> list[str]:
        return ["-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log")]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on this configuration."""
        assert NGINX is not None
        return subprocess.run(
            [
                NGINX,
                "-t",
                "-p",
                str(self.prefix),
                "-c",
                str(self.conf),
                "-e",
                str(self.prefix / "error.log"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


def write_site(prefix: Path, http_part: str, server_part: str) -> Site:
    """An nginx prefix whose server includes the two parts of an export (the decision log
    path inside the server part is expected to be ``prefix/geofence.log``)."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    http_file = prefix / "geofence.conf"
    server_file = prefix / "geofence.conf.server.conf"
    http_file.write_text(http_part)
    server_file.write_text(server_part)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        MAIN_CONF.format(
            module=GEOIP2_MODULE,
            prefix=prefix,
            http_part=http_file,
            server_part=server_file,
            port=port,
        )
    )
    return Site(prefix, conf, prefix / "geofence.log", port)


@contextlib.contextmanager
def running(site: Site, *, deadline: float = 10.0) -> Iterator[Site]:
    """nginx serving ``site`` until the block ends; stopped by its PID."""
    assert NGINX is not None
    process = subprocess.Popen(
        [NGINX, *site.arguments()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        end = time.monotonic() + deadline
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                errors = (
                    (site.prefix / "error.log").read_text()
                    if (site.prefix / "error.log").exists()
                    else ""
                )
                raise RuntimeError(f"nginx exited with {process.returncode}: {output}{errors}")
            try:
                socket.create_connection(("127.0.0.1", site.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError("nginx did not start listening in time") from None
                time.sleep(0.02)  # polling a real server coming up (helpers.md allows this)
        yield site
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop of the master, by its PID
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """Keep-alive HTTP/1.1 requests to one nginx (reconnecting when it closes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method: str, path: str, headers: list[tuple[str, str]]) -> Reply:
        for attempt in (1, 2):
            try:
                self.connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    self.connection.putheader(name, value)
                self.connection.endheaders()
                response = self.connection.getresponse()
                body = response.read()
                found = {k.lower(): v for k, v in response.getheaders()}
                if response.will_close:
                    self.connection.close()
                return Reply(response.status, found, body)
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()
