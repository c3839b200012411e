"""End to end: the djsite project behind a real gunicorn (WSGI) and a real uvicorn (ASGI).

The server sees every request from 127.0.0.1; the policy trusts X-Forwarded-For from there,
so each request names its client in that header. A bad policy stops gunicorn, uvicorn and
runserver before they serve.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios.table import APP_BODY, BROWSER_ACCEPT, CN, IR, US, WARN_HEADERS, merged
from servers import serve

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.server

HERE = Path(__file__).parent
TESTS = HERE.parent

SERVERS = {
    "gunicorn-wsgi": ("gunicorn", "djsite.wsgi:application", {}, ()),
    # uvicorn would otherwise rewrite the peer from X-Forwarded-For itself: let geofence do it.
    "uvicorn-asgi": (
        "uvicorn",
        "djsite.asgi:application",
        {"DJSITE_ASYNC": "1"},
        ("--no-proxy-headers",),
    ),
    "uvicorn-asgi-sync-view": ("uvicorn", "djsite.asgi:application", {}, ("--no-proxy-headers",)),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server, app, extra_env, extra_args = SERVERS[request.param]
    config = tmp_path_factory.mktemp("django-server") / "geofence.json"
    config.write_text(json.dumps(merged(client_ip={"trusted_proxies": ["127.0.0.1/32"]})))
    env = {
        "DJANGO_SETTINGS_MODULE": "djsite.settings",
        "DJSITE_GEOFENCE": str(config),
        # djsite's view answers with the scenario table's constants.
        "PYTHONPATH": os.pathsep.join(
            map(str, (TESTS.parent / "adapters", TESTS.parent, TESTS / "helpers"))
        ),
        **extra_env,
    }
    with serve(server, app, cwd=HERE, env=env, extra_args=extra_args) as url:
        yield url


def via(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


def test_blocked_gets_451_json(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/models", headers=via(CN))
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["link"] == '<https://example.com/supported-countries>; rel="blocked-by"'
    assert response.json()["error"]["code"] == "unsupported_country_region_territory"
    assert "x-geofence-action" not in response.headers


def test_blocked_browser_gets_the_page(base_url: str) -> None:
    response = httpx.get(base_url + "/web/home", headers=via(CN, Accept=BROWSER_ACCEPT))
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert int(response.headers["content-length"]) == len(response.content)


def test_blocked_head_and_post(base_url: str) -> None:
    got = httpx.get(base_url + "/v1/models", headers=via(CN))
    head = httpx.head(base_url + "/v1/models", headers=via(CN))
    assert head.status_code == 451
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    post = httpx.post(base_url + "/v1/chat", content=b"x" * 200_000, headers=via(CN))
    assert post.status_code == 451
    assert post.json()["error"]["type"] == "request_forbidden"


def test_allowed_gets_the_app(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/models", headers=via(US))
    assert response.status_code == 200
    assert response.content == APP_BODY
    assert response.headers["cache-control"] == "max-age=60"
    assert response.headers["x-geofence-action"] == "allow"
    assert "sunset" not in response.headers


def test_grace_period_gets_warn_headers(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/chat", headers=via(IR))
    assert response.status_code == 200
    assert response.content == APP_BODY
    for name, value in WARN_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["x-geofence-action"] == "warn"


def test_only_the_entry_next_to_the_trusted_proxy_counts(base_url: str) -> None:
    # Two hops: the client-supplied entry left of the trusted proxy's is never read.
    response = httpx.get(base_url + "/v1/models", headers=via(f"{US}, {CN}"))
    assert response.status_code == 451


# -- a bad policy stops every server before it serves ----------------------------------------

BAD_POLICY = {"rules": [{"name": "x", "action": "block", "regions": ["UK"]}]}
BAD_POLICY_TEXT = "rules[0].regions[0]: 'UK' is not an ISO 3166"
# Default flags, but port 0: each exits at startup, whatever port it would have used.
STARTUP = {
    "gunicorn": ("gunicorn", ["--bind", "127.0.0.1:0", "djsite.wsgi:application"]),
    "uvicorn": ("uvicorn", ["--port", "0", "djsite.asgi:application"]),
    "runserver-noreload": ("django", ["runserver", "127.0.0.1:0", "--noreload"]),
}


def _bad_policy_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "geofence.json"
    config.write_text(json.dumps(BAD_POLICY))
    paths = (HERE, TESTS.parent / "adapters", TESTS.parent, TESTS / "helpers")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "djsite.settings",
        "DJSITE_GEOFENCE": str(config),
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.parametrize("server", sorted(STARTUP))
def test_bad_policy_stops_the_server(server: str, tmp_path: Path) -> None:
    module, args = STARTUP[server]
    pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        check=False,
        cwd=HERE,
        env=_bad_policy_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode != 0, output
    assert BAD_POLICY_TEXT in output


def test_bad_policy_runserver_with_autoreload_never_serves(tmp_path: Path) -> None:
    """runserver's default: the system check fails, the autoreloader waits for a fix, and
    nothing listens meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "runserver.log"
    with log.open("wb") as output:
        # Its own process group: the autoreloader runs the server in a child process.
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}"],
            cwd=HERE,
            env=_bad_policy_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "geofence_django.E002" not in log.read_text("utf-8", "replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert BAD_POLICY_TEXT in log.read_text("utf-8", "replace")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
