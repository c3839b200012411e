"""The same one-endpoint API in Django, Flask and Starlette, bare and with geofence.

``GET /v1/models`` answers a small JSON body. The bare apps have no middleware at all, which
is the harshest baseline: any real stack (sessions, CSRF, auth) makes geofence's share smaller.

Used in-process by ``inprocess.py`` and by the real servers (``servers.py``), which load
``apps:starlette_asgi`` / ``apps:flask_wsgi`` with the policy in ``GEOFENCE_BENCH_CONFIG``
(JSON; empty for the bare app).
"""

from __future__ import annotations

import json
import os
from typing import Any

BODY = {"object": "list", "data": [{"id": "model-1", "object": "model"}]}


def flask_app(config: dict[str, Any] | None) -> Any:
    from flask import Flask

    # Named for this module, which Flask can always find: "bench" may be a namespace
    # package spread over several checkouts (a worktree on sys.path), which Flask rejects.
    app = Flask(__name__)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return BODY

    if config is not None:
        from geofence_flask import Geofence

        Geofence(app, config=config)
    return app


def starlette_app(config: dict[str, Any] | None) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(BODY)

    app: Any = Starlette(routes=[Route("/v1/models", models)])
    if config is not None:
        from geofence_asgi import GeofenceMiddleware

        app = GeofenceMiddleware(app, config=config)
    return app


# -- Django: one settings module for the process; the handlers differ in MIDDLEWARE ---------

urlpatterns: list[Any] = []


def django_handlers(
    config: dict[str, Any] | None, extra_settings: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """(bare WSGIHandler, WSGIHandler with geofence_django's middleware), same settings.

    ``config`` None: no geofence at all (a peer's process), and the second handler is None.
    ``extra_settings`` are added to the settings of the process (the first call configures
    them)."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    def models(request: HttpRequest) -> JsonResponse:
        return JsonResponse(BODY)

    urlpatterns[:] = [path("v1/models", models)]
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="bench-not-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=["geofence_django"] if config is not None else [],
            MIDDLEWARE=[],
            USE_TZ=True,
            GEOFENCE=config,
            **(extra_settings or {}),
        )
        django.setup()
    settings.MIDDLEWARE = []
    bare = WSGIHandler()
    if config is None:
        return bare, None
    settings.GEOFENCE = config
    settings.MIDDLEWARE = ["geofence_django.middleware.GeofenceMiddleware"]
    fenced = WSGIHandler()
    settings.MIDDLEWARE = []
    return bare, fenced


# -- for the real servers ----------------------------------------------------------------------


def _server_config() -> dict[str, Any] | None:
    text = os.environ.get("GEOFENCE_BENCH_CONFIG")
    return None if not text else dict(json.loads(text))


def __getattr__(name: str) -> Any:
    # Built on first access, in the server process, from the environment the bench sets.
    if name == "flask_wsgi":
        return flask_app(_server_config())
    if name == "starlette_asgi":
        return starlette_app(_server_config())
    raise AttributeError(name)
