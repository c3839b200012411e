"""Live: a real nginx (Debian) on loopback proxies requests to a real app (uvicorn, the ASGI
middleware) and writes its access log; replaying that log gives, line by line, the decision
the app made (nginx logs the app's answer: its status and an x-decision header).

nginx writes two logs of the same requests: JSON lines named as its variables (with $host)
and its "main" format (combined + "$http_x_forwarded_for", no host)."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from servers import serve
from tests_support import CITY_DB

from geofence.replay import Record, decisions, read_log, replay
from geofence.replay._report import kind_of

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
# A live nginx is a slow real component: tox runs these in one env of the matrix only.
pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian nginx-light)"),
    pytest.mark.slow,
]

POLICY: dict[str, Any] = {
    "client_ip": {"trusted_proxies": ["127.0.0.0/8"]},
    "geoip": {"country_db": CITY_DB},
    "rules": [
        {
            "name": "cn",
            "action": "block",
            "regions": ["CN"],
            "enforce_from": "2024-07-09T00:00:00Z",
        },
        {
            "name": "ru",
            "action": "block",
            "regions": ["RU"],
            "warn_from": "2024-01-01T00:00:00Z",
            "enforce_from": "2099-01-01T00:00:00Z",
        },
        {"name": "gb-api", "action": "warn", "regions": ["GB"], "paths": ["/v1/*"]},
        {"name": "se-www", "action": "block", "regions": ["SE"], "hosts": ["www.example.com"]},
        {"name": "jp-dry-run", "action": "block", "regions": ["JP"], "mode": "report"},
    ],
}

APP = """
import json, os
from geofence_asgi import GeofenceMiddleware

async def inner(scope, receive, send):
    decision = scope["state"]["geofence"]
    action = decision.action
    kind = action if action == "allow" or decision.enforced else "would_" + action
    note = f"{kind}|{decision.rule or '-'}|{decision.country or '-'}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-decision", note.encode())]})
    await send({"type": "http.response.body", "body": b"ok"})

with open(os.environ["REPLAY_POLICY"]) as f:
    app = GeofenceMiddleware(inner, config=json.load(f))
"""

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format replay_json escape=json '{{"time_iso8601":"$time_iso8601",'
        '"remote_addr":"$remote_addr","http_x_forwarded_for":"$http_x_forwarded_for",'
        '"request_method":"$request_method","request_uri":"$request_uri","host":"$host",'
        '"status":"$status","decision":"$upstream_http_x_decision"}}';
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    access_log {prefix}/access.jsonl replay_json;
    access_log {prefix}/access.log main;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {app};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""

# (method, target, Host, X-Forwarded-For sent to nginx or None)
REQUESTS = [
    ("GET", "/v1/models?limit=5", "api.example.com", "175.16.199.1"),  # CN: block
    ("POST", "/v1/chat", "api.example.com", "2a02:d0c0::1"),  # RU: warn (grace)
    ("GET", "/v1/caf%C3%A9", "api.example.com", "81.2.69.142"),  # GB on /v1/*: warn
    ("GET", "/docs", "api.example.com", "81.2.69.142"),  # GB elsewhere: allow
    ("GET", "/", "www.example.com", "89.160.20.112"),  # SE on www: block (host rule)
    ("GET", "/", "api.example.com", "89.160.20.112"),  # SE on api: allow
    ("HEAD", "/v1/x", "api.example.com", "2001:218::1"),  # JP: report mode
    ("GET", "/v1/x", "api.example.com", "175.16.199.1, 81.2.69.142"),  # forged left part: GB
    ("GET", "/v1/x", "api.example.com", None),  # only trusted hops: unresolved
    ("GET", "/v1/x", "api.example.com", "not-an-ip"),  # garbage: unresolved
    ("DELETE", "/v1/files/1", "api.example.com", "216.160.83.56"),  # US: allow
]


@contextmanager
def nginx(prefix: Path, app: str) -> Iterator[int]:
    assert NGINX is not None
    (prefix / "tmp").mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, app=app))
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError((prefix / "error.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError("nginx did not start listening in time") from None
                time.sleep(0.02)  # polling a real server coming up
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: the logs are complete after it
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def send(port: int, method: str, target: str, host: str, forwarded: str | None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        connection.putheader("Accept", "application/json")
        if forwarded is not None:
            connection.putheader("X-Forwarded-For", forwarded)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def app_kind(row: dict[str, str]) -> str:
    """What the app decided, from nginx's log line: 451 is a block, else its header."""
    return "block" if row["status"] == "451" else row["decision"].split("|")[0]


def test_replaying_nginx_logs_gives_the_apps_decisions(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    (tmp_path / "replay_app.py").write_text(APP)
    env = {"REPLAY_POLICY": str(policy_file)}
    with (
        serve(
            "uvicorn", "replay_app:app", cwd=tmp_path, env=env, extra_args=["--lifespan", "off"]
        ) as base,
        nginx(tmp_path / "nginx", base) as port,
    ):
        statuses = [send(port, *request) for request in REQUESTS]
    assert statuses.count(451) == 2  # CN and SE on www
    rows = [
        json.loads(line) for line in (tmp_path / "nginx" / "access.jsonl").read_text().splitlines()
    ]
    assert len(rows) == len(REQUESTS)
    expected = [app_kind(row) for row in rows]
    assert expected == [
        "block",
        "warn",
        "warn",
        "allow",
        "block",
        "allow",
        "would_block",
        "warn",  # the forged left part is never read: GB on /v1/*
        "allow",
        "allow",
        "allow",
    ]

    # Line by line, the JSON log (which records $host).
    with read_log(tmp_path / "nginx" / "access.jsonl") as log:
        assert log.format == "jsonl"
        records = [item for item in log if isinstance(item, Record)]
    replayed = [kind_of(decision) for _, decision, _ in decisions(records, POLICY)]
    assert replayed == expected
    # The same as totals, through the public API.
    report = replay([tmp_path / "nginx" / "access.jsonl"], policy=POLICY)
    assert +report.policy.kinds == Counter(expected)

    # The "main" log has no host: only the host rule's line differs, and the report says so.
    main = replay([tmp_path / "nginx" / "access.log"], policy=POLICY)
    assert main.files[0].format == "combined"
    assert main.unparsable == 0
    assert +main.policy.kinds == Counter(expected) - Counter({"block": 1}) + Counter({"allow": 1})
    assert "lines have no host (combined logs record none)" in main.remarks()[0]
