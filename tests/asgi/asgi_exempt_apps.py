"""Starlette and FastAPI apps with endpoints marked ``geofence_asgi.exempt`` (test_asgi_exempt).

Every endpoint answers with the reason of the decision it sees. No ``from __future__ import
annotations``: FastAPI reads the endpoints' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from geofence_asgi import GeofenceMiddleware, exempt


def reason(connection: HTTPConnection) -> str:
    decision = getattr(connection.state, "geofence", None)
    return decision.reason if decision is not None else "-"


async def _text(request: Request) -> PlainTextResponse:
    return PlainTextResponse(reason(request))


async def _ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(reason(websocket))
    await websocket.close()


# Starlette: one function per route (exempt() marks the function wherever it is routed).
@exempt
async def health(request: Request) -> PlainTextResponse:
    return await _text(request)


async def status(request: Request) -> PlainTextResponse:
    return await _text(request)


async def neighbour(request: Request) -> PlainTextResponse:
    return await _text(request)


async def sub_ping(request: Request) -> PlainTextResponse:
    return await _text(request)


async def sub_pong(request: Request) -> PlainTextResponse:
    return await _text(request)


async def ws_open(websocket: WebSocket) -> None:
    await _ws(websocket)


async def ws_neighbour(websocket: WebSocket) -> None:
    await _ws(websocket)


@exempt
class Endpoint(HTTPEndpoint):
    async def get(self, request: Request) -> PlainTextResponse:
        return await _text(request)


@exempt
async def static_files(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse(scope["state"]["geofence"].reason)(scope, receive, send)


ROUTES = [
    Route("/health", health),
    Route("/v1/status/{n:int}", exempt(status)),
    Route("/v1/models", neighbour, methods=["GET", "POST"]),
    Route("/cbv", Endpoint),
    WebSocketRoute("/ws/open", exempt(ws_open)),
    WebSocketRoute("/v1/stream", ws_neighbour),
    Mount("/sub", routes=[Route("/ping", exempt(sub_ping)), Route("/pong", sub_pong)]),
    Mount("/static", app=static_files),
]


def starlette_app(config: Any, *, wrapped: bool = False) -> Any:
    """The Starlette app, with the middleware installed the Starlette way, or wrapped around
    the app (``wrapped``)."""
    if wrapped:
        return GeofenceMiddleware(Starlette(routes=ROUTES), config=config)
    return Starlette(routes=ROUTES, middleware=[Middleware(GeofenceMiddleware, config=config)])


def fastapi_app(config: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(GeofenceMiddleware, config=config)

    @app.get("/health")
    @exempt
    async def health(request: Request) -> PlainTextResponse:
        return await _text(request)

    @exempt  # above the route decorator works too: the function itself is marked
    @app.get("/v1/status/{n}")
    def status(n: int, request: Request) -> str:
        return reason(request)

    @app.post("/health")  # the same path, another endpoint: decided
    async def post_health(request: Request) -> PlainTextResponse:
        return await _text(request)

    @app.get("/v1/models")
    async def models(request: Request) -> PlainTextResponse:
        return await _text(request)

    @app.websocket("/ws/open")
    @exempt
    async def ws_open(websocket: WebSocket) -> None:
        await _ws(websocket)

    @app.websocket("/v1/stream")
    async def ws_neighbour(websocket: WebSocket) -> None:
        await _ws(websocket)

    router = APIRouter(prefix="/api")

    @router.get("/ping")
    @exempt
    async def ping(request: Request) -> PlainTextResponse:
        return await _text(request)

    @router.get("/pong")
    async def pong(request: Request) -> PlainTextResponse:
        return await _text(request)

    app.include_router(router)
    app.include_router(router, prefix="/v2")  # the same router again, under another prefix
    sub = FastAPI()

    @sub.get("/ping")
    @exempt
    async def sub_ping(request: Request) -> PlainTextResponse:
        return await _text(request)

    app.mount("/sub", sub)
    return app


def fastapi_accounts_app(config: Any) -> FastAPI:
    """The middleware's account hook, and routes that decide again with their account."""
    from fastapi import Depends

    from geofence_asgi import geofence_account

    def who() -> str:
        return "acct-route"

    Routed = Annotated[Any, Depends(geofence_account(who))]

    app = FastAPI()
    app.add_middleware(GeofenceMiddleware, config=config, account=lambda scope: "acct-hook")

    @app.get("/health")
    @exempt
    async def health(request: Request, account: Routed) -> str:
        return reason(request)

    @app.get("/v1/models")
    async def models(request: Request, account: Routed) -> str:
        return reason(request)

    return app
