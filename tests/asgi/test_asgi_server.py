"""End to end: Starlette and FastAPI apps behind the middleware, served by a real uvicorn.

The server's peer is this process on loopback, trusted as a proxy by the test policy, so the
X-Forwarded-For header chooses the client's country.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scenarios.table import BASE, BROWSER_ACCEPT, CN, IR, US, WARN_HEADERS, merged
from servers import serve

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.server

HERE = Path(__file__).parent
CONFIG = merged(client_ip={"trusted_proxies": ["127.0.0.1/32"]})
ENV = {"GEOFENCE_TEST_CONFIG": json.dumps(CONFIG)}
# uvicorn would otherwise resolve X-Forwarded-For from 127.0.0.1 itself (its default); these
# tests are about geofence's own resolution.
ARGS = ["--factory", "--no-proxy-headers"]
SUNSET = WARN_HEADERS["sunset"]
EXAMPLE_ENFORCE_FROM = datetime(2030, 1, 1, tzinfo=timezone.utc)
JSON_CODE = "unsupported_country_region_territory"


def from_(ip: str, **headers: str) -> dict[str, str]:
    return {"x-forwarded-for": ip, **headers}


@pytest.fixture(scope="module", params=["starlette_app", "fastapi_app"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "fastapi_app":
        pytest.importorskip("fastapi")
    app = f"asgi_server_apps:{request.param}"
    with serve("uvicorn", app, cwd=HERE, env=ENV, extra_args=ARGS) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def test_blocked_api_client_gets_json(client: httpx.Client) -> None:
    response = client.get("/v1/models", headers=from_(CN))
    assert response.status_code == 451
    assert response.json()["error"]["code"] == JSON_CODE
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["link"] == f'<{BASE["info_url"]}>; rel="blocked-by"'


def test_blocked_browser_gets_page(client: httpx.Client) -> None:
    response = client.get("/web/home", headers=from_(CN, accept=BROWSER_ACCEPT))
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()


def test_blocked_head_has_headers_but_no_body(client: httpx.Client) -> None:
    get = client.get("/v1/models", headers=from_(CN))
    head = client.head("/v1/models", headers=from_(CN))
    assert head.status_code == 451 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_blocked_post_with_large_body(client: httpx.Client) -> None:
    body = b"x" * 512 * 1024
    response = client.post("/v1/chat", headers=from_(CN), content=body)
    assert response.status_code == 451
    # The connection (or a new one) still serves the next request.
    assert client.get("/v1/models", headers=from_(US)).status_code == 200


def test_warned_client_gets_app_response_and_headers(client: httpx.Client) -> None:
    response = client.get("/v1/chat", headers=from_(IR))
    assert response.status_code == 200
    assert response.json()["geofence"] == {
        "action": "warn",
        "enforced": True,
        "reason": "rule",
        "country": "IR",
    }
    assert response.headers["sunset"] == SUNSET
    assert response.headers["deprecation"] == "@1577836800"
    assert response.headers["cache-control"] == "private, max-age=60"


def test_allowed_client_sees_decision(client: httpx.Client) -> None:
    response = client.get("/v1/models", headers=from_(US))
    assert response.status_code == 200
    assert response.json()["geofence"]["country"] == "US"
    assert response.headers["cache-control"] == "max-age=60"
    assert "sunset" not in response.headers


def test_exempt_path(client: httpx.Client) -> None:
    response = client.get("/healthz", headers=from_(CN))
    assert response.status_code == 200
    assert response.json()["geofence"]["reason"] == "exempt_path"


def test_websocket_allowed_echoes(base_url: str) -> None:
    from websockets.sync.client import connect

    url = base_url.replace("http://", "ws://") + "/v1/stream"
    with connect(url, additional_headers=from_(US), open_timeout=10) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping (allow)"


def test_websocket_blocked_gets_denial_response(base_url: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = base_url.replace("http://", "ws://") + "/v1/stream"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=from_(CN), open_timeout=10)
    assert refused.value.response.status_code == 451
    assert json.loads(refused.value.response.body)["error"]["code"] == JSON_CODE


def test_websocket_blocked_without_extension_is_refused() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    app = "asgi_server_apps:starlette_app_without_denial_extension"
    with serve("uvicorn", app, cwd=HERE, env=ENV, extra_args=ARGS) as base:
        url = base.replace("http://", "ws://") + "/v1/stream"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=from_(CN), open_timeout=10)
        # The pre-accept close (code 1008) is answered by uvicorn with a bare 403.
        assert refused.value.response.status_code == 403
        with connect(url, additional_headers=from_(US), open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping (allow)"


def test_root_path_is_stripped_before_matching() -> None:
    app = "asgi_server_apps:starlette_app"
    args = [*ARGS, "--root-path", "/api"]
    with (
        serve("uvicorn", app, cwd=HERE, env=ENV, extra_args=args) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        blocked = client.get("/v1/models", headers=from_(CN))
        exempt = client.get("/healthz", headers=from_(CN))
    assert blocked.status_code == 451
    assert exempt.status_code == 200
    assert exempt.json()["geofence"]["reason"] == "exempt_path"


def test_uvicorn_proxy_headers_rewrite_the_peer_geofence_sees() -> None:
    """With uvicorn's default --proxy-headers (trusting 127.0.0.1), the client address is
    already rewritten from X-Forwarded-For, so a policy that trusts no proxy still works."""
    config = {**CONFIG, "client_ip": {}}
    env = {"GEOFENCE_TEST_CONFIG": json.dumps(config)}
    app = "asgi_server_apps:starlette_app"
    with (
        serve("uvicorn", app, cwd=HERE, env=env, extra_args=["--factory"]) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        assert client.get("/v1/models", headers=from_(CN)).status_code == 451
        allowed = client.get("/v1/models", headers=from_(US))
    assert allowed.json()["geofence"]["country"] == "US"


def test_django_asgi_handler_behind_the_middleware() -> None:
    pytest.importorskip("django")
    args = ["--no-proxy-headers", "--root-path", "/api"]
    with (
        serve("uvicorn", "asgi_django_app:application", cwd=HERE, env=ENV, extra_args=args) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        blocked = client.get("/v1/models", headers=from_(CN))
        allowed = client.get("/v1/models", headers=from_(US))
        exempt = client.get("/healthz", headers=from_(CN))
    assert blocked.status_code == 451
    assert blocked.json()["error"]["code"] == JSON_CODE
    assert allowed.json() == {"path_info": "/v1/models", "reason": "default", "country": "US"}
    assert exempt.json()["reason"] == "exempt_path"


def test_fastapi_example_works_as_documented() -> None:
    pytest.importorskip("fastapi")
    examples = HERE.parent.parent / "examples"
    args = ["--no-proxy-headers"]
    with (
        serve("uvicorn", "fastapi_app:app", cwd=examples, extra_args=args) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        blocked = client.get("/v1/models", headers=from_("175.16.199.1"))
        warned = client.get("/v1/models", headers=from_("178.120.0.1"))
        allowed = client.get("/v1/models", headers=from_("8.8.8.8"))
        health = client.get("/healthz", headers=from_("175.16.199.1"))
    assert blocked.status_code == 451
    if datetime.now(timezone.utc) < EXAMPLE_ENFORCE_FROM:  # the example's grace period
        assert (warned.status_code, warned.json()["country"]) == (200, "BY")
        assert warned.headers["sunset"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    else:
        assert warned.status_code == 451
    assert (allowed.status_code, allowed.json()["country"]) == (200, "US")
    assert "sunset" not in allowed.headers
    assert health.status_code == 200
