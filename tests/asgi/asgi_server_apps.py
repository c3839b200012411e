"""App factories served by a real uvicorn in test_asgi_server.py (``--factory``).

The policy comes from the GEOFENCE_TEST_CONFIG environment variable (JSON). Every HTTP route
answers a JSON document with the decision the app saw; every websocket path echoes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from geofence_asgi import GeofenceMiddleware

METHODS = ["GET", "HEAD", "POST", "OPTIONS"]


def _config() -> Any:
    return json.loads(os.environ["GEOFENCE_TEST_CONFIG"])


def _seen(decision: Any) -> dict[str, Any]:
    return {k: getattr(decision, k) for k in ("action", "enforced", "reason", "country")}


async def view(request: Request) -> JSONResponse:
    document = {"path": request.url.path, "geofence": _seen(request.state.geofence)}
    return JSONResponse(document, headers={"cache-control": "max-age=60"})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"{text} ({websocket.state.geofence.action})")


def starlette_app() -> Any:
    routes = [WebSocketRoute("/{p:path}", echo), Route("/{p:path}", view, methods=METHODS)]
    return Starlette(routes=routes, middleware=[Middleware(GeofenceMiddleware, config=_config())])


def fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(GeofenceMiddleware, config=_config())
    app.add_api_websocket_route("/{p:path}", echo)
    app.add_api_route("/{p:path}", view, methods=METHODS)
    return app


def starlette_app_without_denial_extension() -> Any:
    """As a server without the websocket.http.response extension would run the app."""
    app = starlette_app()

    async def stripped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            extensions = dict(scope.get("extensions") or {})
            extensions.pop("websocket.http.response", None)
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return stripped
