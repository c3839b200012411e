"""The app served by test_asgi_startup.py: ``asgi_startup_app:app`` for uvicorn and hypercorn.

GEOFENCE_TEST_APP picks how the middleware is installed: "direct" (wrapped at import),
"starlette" or "fastapi" (``add_middleware``: built inside the app's first ASGI call).
GEOFENCE_TEST_CONFIG is the policy (JSON).
"""

from __future__ import annotations

import json
import os
from typing import Any

from geofence_asgi import GeofenceMiddleware

KIND = os.environ["GEOFENCE_TEST_APP"]
CONFIG = json.loads(os.environ["GEOFENCE_TEST_CONFIG"])
# Written by the app when a request reaches it, which a refusing middleware never allows.
REACHED = os.environ.get("GEOFENCE_TEST_REACHED", "")


def _reached() -> None:
    if REACHED:
        with open(REACHED, "a") as file:
            file.write("reached\n")


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # a raw app that supports lifespan, as frameworks do
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    _reached()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def view(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    _reached()
    return PlainTextResponse("hello")


def _framework_app() -> Any:
    from starlette.routing import Route

    routes = [Route("/{p:path}", view)]
    if KIND == "fastapi":
        from fastapi import FastAPI

        framework: Any = FastAPI(routes=routes)
    else:
        from starlette.applications import Starlette

        framework = Starlette(routes=routes)
    framework.add_middleware(GeofenceMiddleware, config=CONFIG)
    return framework


app: Any = GeofenceMiddleware(hello, config=CONFIG) if KIND == "direct" else _framework_app()
