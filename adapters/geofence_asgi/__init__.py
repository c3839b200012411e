"""geofence for any ASGI app (Starlette, FastAPI, Django's ASGI handler, Quart, raw ASGI).

    from geofence_asgi import GeofenceMiddleware
    app = GeofenceMiddleware(app, config="geofence.toml")

Starlette / FastAPI: ``app.add_middleware(GeofenceMiddleware, config="geofence.toml")``. The
decision is in ``scope["state"]["geofence"]`` (Starlette: ``request.state.geofence``). A bad
policy stops the server before it serves: :class:`geofence.ConfigError` at construction, or,
when Starlette builds the middleware inside the running server, a failed lifespan startup.
"""

from __future__ import annotations

from .middleware import STATE_KEY, GeofenceMiddleware

__all__ = ["STATE_KEY", "GeofenceMiddleware"]
