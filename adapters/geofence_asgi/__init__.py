"""geofence for any ASGI app (Starlette, FastAPI, Django's ASGI handler, Quart, raw ASGI).

    from geofence_asgi import GeofenceMiddleware
    app = GeofenceMiddleware(app, config="geofence.toml", account=account_of)

Starlette / FastAPI: ``app.add_middleware(GeofenceMiddleware, config="geofence.toml")``. The
decision is in ``scope["state"]["geofence"]`` (Starlette: ``request.state.geofence``). A bad
policy stops the server before it serves: :class:`geofence.ConfigError` at construction, or,
when Starlette builds the middleware inside the running server, a failed lifespan startup.
Routes that learn the account themselves use :func:`geofence_account` (a FastAPI dependency)
or :func:`decide_account` from :mod:`geofence_asgi.routes` (imported on first use: it needs
Starlette). ``@exempt`` on an endpoint puts its routes outside the policy (reason
``exempt_view``): :mod:`geofence.http._exempt` says how they are found.
"""

from __future__ import annotations

from typing import Any

from geofence.http._exempt import exempt

from .middleware import STATE_KEY, GeofenceMiddleware

__all__ = ["STATE_KEY", "GeofenceMiddleware", "decide_account", "exempt", "geofence_account"]


def __getattr__(name: str) -> Any:
    if name in ("decide_account", "geofence_account"):
        from . import routes

        return getattr(routes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
