"""The scenario table's app for ASGI, three ways: raw ASGI, Starlette, FastAPI.

Each answers every path and method with the table's APP_* response and records what it saw
(the decision in ``scope["state"]``) in a :class:`Seen`. ``Seen.wrap`` wraps the whole stack
to count calls of ``receive()``, which proves that a blocked request body is never read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from scenarios.table import APP_BODY, APP_CACHE_CONTROL, APP_CONTENT_TYPE, APP_LINK, APP_STATUS

import geofence
from geofence_asgi import GeofenceMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
APP_HEADERS = {
    "content-type": APP_CONTENT_TYPE,
    "cache-control": APP_CACHE_CONTROL,
    "link": APP_LINK,
}
KINDS = ("raw", "starlette", "fastapi")


@dataclass
class Seen:
    decisions: list[Any] = field(default_factory=list)
    receive_calls: int = 0

    @property
    def app_called(self) -> bool:
        return bool(self.decisions)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            async def counted_receive() -> Message:
                self.receive_calls += 1
                return await receive()

            await app(scope, counted_receive, send)

        return counting


def raw_app(seen: Seen) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        seen.decisions.append(scope.get("state", {}).get("geofence"))
        headers = [(k.encode(), v.encode()) for k, v in APP_HEADERS.items()]
        headers.append((b"content-length", str(len(APP_BODY)).encode()))
        await send({"type": "http.response.start", "status": APP_STATUS, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else APP_BODY
        await send({"type": "http.response.body", "body": body})

    return app


def starlette_app(seen: Seen, middleware: list[Any]) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def view(request: Request) -> Response:
        seen.decisions.append(getattr(request.state, "geofence", None))
        return starlette_response(Response, request.method)

    return Starlette(routes=[Route("/{p:path}", view, methods=METHODS)], middleware=middleware)


def starlette_response(cls: Any, method: str) -> Any:
    headers = {k: v for k, v in APP_HEADERS.items() if k != "content-type"}
    body = b"" if method == "HEAD" else APP_BODY
    return cls(body, status_code=APP_STATUS, media_type=APP_CONTENT_TYPE, headers=headers)


def build(kind: str, seen: Seen, engine: geofence.Engine, account: Any = None) -> ASGIApp:
    """The app of ``kind`` with the middleware installed the framework's usual way;
    ``account``: its account hook, if any."""
    if kind == "raw":
        return GeofenceMiddleware(raw_app(seen), engine=engine, account=account)
    from starlette.middleware import Middleware

    middleware = [Middleware(GeofenceMiddleware, engine=engine, account=account)]
    if kind == "starlette":
        return starlette_app(seen, middleware)
    from asgi_fastapi import fastapi_app  # a module of its own: FastAPI reads annotations

    return fastapi_app(seen, middleware)
