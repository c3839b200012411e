"""End to end: the djsite project behind a real gunicorn (WSGI) and a real uvicorn (ASGI).

The server sees every request from 127.0.0.1; the policy trusts X-Forwarded-For from there,
so each request names its client in that header.
"""

from __future__ import annotations

import json
import os
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
