"""The Flask extension: ``Geofence(app)`` or ``Geofence().init_app(app)``. It installs one WSGI
layer per app (``layer.py``); every decision is the core engine's."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from geofence import ConfigError, Engine, Policy, load_policy

from .layer import EXEMPT_ATTR, EXEMPT_DECISION, GeofenceState

__all__ = ["EXEMPT_DECISION", "Geofence", "GeofenceState"]

Config = Mapping[str, Any] | str | os.PathLike[str] | Policy
View = TypeVar("View", bound=Callable[..., Any])


class Geofence:
    """Flask extension: ``Geofence(app)``, or ``geofence = Geofence()`` then
    ``geofence.init_app(app)`` in an application factory (one object can serve several apps).

    The policy is ``config`` when given, else ``app.config["GEOFENCE"]`` (a dict, or the path
    of a ``.toml`` / ``.json`` file). A bad policy raises :class:`geofence.ConfigError` from
    ``init_app``.
    """

    def __init__(self, app: Flask | None = None, *, config: Config | None = None) -> None:
        self.config = config
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = self.config if self.config is not None else app.config.get("GEOFENCE")
        if config is None:
            raise ConfigError(
                "GEOFENCE",
                "no geofence configuration: set app.config['GEOFENCE'] to a dict or to the "
                "path of a .toml or .json file, or pass Geofence(app, config=...)",
            )
        policy = config if isinstance(config, Policy) else load_policy(config)
        existing: GeofenceState | None = app.extensions.get("geofence")
        if existing is not None:
            if existing.engine.policy == policy:
                return  # Installed twice with one policy: keep one layer, decide once.
            raise ConfigError(
                "GEOFENCE",
                "geofence is already installed on this app with a different policy; install "
                "it once (Geofence(app) or Geofence().init_app(app), not both)",
            )
        if app._got_first_request:
            # Like Flask's own setup methods: installed now, it would apply to some requests
            # (threads already serving) and not others.
            raise AssertionError(
                "geofence cannot be installed on an app that has already handled a request; "
                "call Geofence(app) or init_app(app) while setting the app up, where "
                "before_request hooks are registered"
            )
        behind_proxy_fix = _check_wrapped(app)
        state = GeofenceState(app, Engine.from_config(policy), app.wsgi_app)
        if behind_proxy_fix:
            state.check_proxy_fix()
        # Only once the engine is built: a half-installed extension must not look installed.
        app.wsgi_app = state.wsgi  # type: ignore[method-assign]
        app.extensions["geofence"] = state

    def exempt(self, view: View) -> View:
        """Mark a view (app or blueprint) as outside the policy: no decision is made for it and
        ``g.geofence`` is :data:`EXEMPT_DECISION`. Put it below or above ``@app.route``."""
        setattr(view, EXEMPT_ATTR, True)
        return view


def _check_wrapped(app: Flask) -> bool:
    """Refuse an ``app.wsgi_app`` that some middleware already wraps, unless it is ProxyFix;
    return whether ProxyFix is there.

    geofence must decide on the request that Flask will route. Middleware installed after
    geofence runs before it and is seen through; middleware installed before it would run
    after geofence's decision and may change the request (a prefix mount moves the path into
    SCRIPT_NAME, so rules on paths would not match). ProxyFix changes only the client address
    and host, which geofence reads from the socket peer anyway, and SCRIPT_NAME.
    """
    inner: object = app.wsgi_app
    proxy_fix = False
    while isinstance(inner, ProxyFix):
        proxy_fix = True
        inner = inner.app
    if getattr(inner, "__self__", None) is not app:
        raise ConfigError(
            "app.wsgi_app",
            f"already wrapped by {type(inner).__name__}; install geofence first "
            "(Geofence(app) or init_app(app) before wrapping app.wsgi_app), so that it "
            "decides on the request as Flask routes it",
        )
    return proxy_fix
