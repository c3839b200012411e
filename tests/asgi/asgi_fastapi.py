"""The scenario table's app on FastAPI (see asgi_apps.py).

FastAPI injects the request by its annotation, resolved in this module's globals, so FastAPI
is imported at the top here rather than lazily in asgi_apps.
"""

from __future__ import annotations

from typing import Any

from asgi_apps import METHODS, ASGIApp, Seen, starlette_response
from fastapi import FastAPI, Request, Response


def fastapi_app(seen: Seen, middleware: list[Any]) -> ASGIApp:
    app = FastAPI(middleware=middleware)

    @app.api_route("/{p:path}", methods=METHODS)
    async def view(request: Request) -> Response:
        seen.decisions.append(getattr(request.state, "geofence", None))
        response: Response = starlette_response(Response, request.method)
        return response

    return app
