"""``geofence_asgi.exempt``: per-route exemption (reason ``exempt_view``) on Starlette and
FastAPI, HTTP and websockets, with their real test clients."""

from __future__ import annotations

from typing import Any

import pytest
from asgi_exempt_apps import fastapi_app, starlette_app
from scenarios.table import BASE, RU, US, merged

from geofence.http import _asgi

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

APPS = {
    "starlette": lambda: starlette_app(BASE),
    "starlette-wrapped": lambda: starlette_app(BASE, wrapped=True),
    "fastapi": lambda: fastapi_app(BASE),
}
EXEMPT = {
    "starlette": ["/health", "/v1/status/7", "/cbv", "/sub/ping", "/static/app.css"],
    "fastapi": ["/health", "/v1/status/7", "/api/ping", "/v2/api/ping", "/sub/ping"],
}
DECIDED = {
    "starlette": [
        ("GET", "/v1/models"),  # a neighbour under an exempt route's prefix
        ("GET", "/v1/status/x"),  # the exempt pattern's prefix, but no int: 404
        ("POST", "/health"),  # a method the exempt route refuses: 405
        ("GET", "/health/"),  # a slash redirect to the exempt route
        ("GET", "/sub/pong"),
        ("GET", "/nowhere"),  # 404
    ],
    "fastapi": [
        ("GET", "/v1/models"),
        ("POST", "/health"),  # the same path, an endpoint that is not exempt
        ("GET", "/health/"),  # FastAPI's slash redirect
        ("GET", "/api/pong"),
        ("GET", "/v2/api/pong"),
        ("GET", "/sub/pong"),  # 404 in the mounted app
        ("GET", "/nowhere"),
    ],
}


def client(name: str, peer: str) -> Any:
    from starlette.testclient import TestClient

    return TestClient(APPS[name](), client=(peer, 50000), follow_redirects=False)


@pytest.mark.parametrize("name", list(APPS))
def test_exempt_routes_get_their_endpoint_from_a_blocked_country(name: str) -> None:
    with client(name, RU) as http:
        for path in EXEMPT[name.split("-", maxsplit=1)[0]]:
            response = http.get(path)
            assert (path, response.status_code) == (path, 200)
            assert response.text.strip('"') == "exempt_view"


@pytest.mark.parametrize("name", list(APPS))
def test_everything_else_is_decided(name: str) -> None:
    with client(name, RU) as http:
        for method, path in DECIDED[name.split("-", maxsplit=1)[0]]:
            assert (path, http.request(method, path).status_code) == (path, 403)
    with client(name, US) as http:  # positive control: what the app itself answers
        assert http.get("/v1/models").text == "default"
        assert http.get("/nowhere").status_code == 404
        assert http.get("/health/").status_code in (307, 308)


@pytest.mark.parametrize("name", list(APPS))
def test_websockets(name: str) -> None:
    from starlette.testclient import WebSocketDenialResponse

    with client(name, RU) as http:
        with http.websocket_connect("/ws/open") as ws:
            assert ws.receive_text() == "exempt_view"
        with pytest.raises(WebSocketDenialResponse) as denied, http.websocket_connect("/v1/stream"):
            pass
        assert denied.value.status_code == 403


def test_without_exempt_routes_nothing_is_routed_before_deciding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from geofence_asgi import GeofenceMiddleware

    routed: list[Any] = []
    route = _asgi.asgi_routed_exempt
    monkeypatch.setattr(
        _asgi, "asgi_routed_exempt", lambda *a: routed.append(a[1]["path"]) or route(*a)
    )
    plain = FastAPI()
    plain.get("/v1/models")(lambda: "ok")
    plain.add_middleware(GeofenceMiddleware, config=BASE)
    with TestClient(plain, client=(RU, 1)) as http:
        assert http.get("/v1/models").status_code == 403
    # With exempt routes, a denial outside their prefixes is not routed either.
    with client("fastapi", RU) as http:
        assert http.get("/api/pong").status_code == 403
        assert http.get("/health").status_code == 200
    assert routed == ["/health"]


def test_accounts_do_not_decide_an_exempt_route() -> None:
    from asgi_exempt_apps import fastapi_accounts_app
    from starlette.testclient import TestClient

    app = fastapi_accounts_app(merged(accounts={"store": "memory://"}))
    with TestClient(app, client=(RU, 1)) as http:
        assert http.get("/health").json() == "exempt_view"
        assert http.get("/v1/models").status_code == 403
    with TestClient(app, client=(US, 1)) as http:
        assert http.get("/v1/models").json() == "default"


def test_a_route_that_fails_to_match_is_decided() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from geofence_asgi import GeofenceMiddleware, exempt

    class Broken(Route):
        def matches(self, scope: Any) -> Any:
            raise RuntimeError("a broken route")

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = GeofenceMiddleware(Starlette(routes=[Broken("/health", exempt(ok))]), config=BASE)
    with TestClient(app, client=(RU, 1)) as http:
        assert http.get("/health").status_code == 403
